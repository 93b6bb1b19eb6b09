"""Benchmark of evaluation: held-out rows per second of the tiny policy with batched, left-padded greedy decoding
against one row at a time, the cost of the four grounding conditions, and whether batching changes any answer.

Goal: batching gives exactly the same greedy answers as one row at a time (left padding must not leak into the
result). Speed is reported as the fastest of `--repeats` runs (the least disturbed by other load on the machine),
with the load average. Results go to benchmarks/results/evaluate.json.

    .venv/bin/python benchmarks/bench_evaluate.py [--rows 16] [--batch 16] [--max-new-tokens 48] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from vvkit.config import SynthConfig  # noqa: E402
from vvkit.evaluate import CONDITIONS, EvalConfig, evaluate  # noqa: E402
from vvkit.io import atomic_write_json  # noqa: E402
from vvkit.model import build_tiny_policy, load_policy  # noqa: E402
from vvkit.schema import load_rows  # noqa: E402
from vvkit.synth import build_dataset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate.json"
FRAMES = {"fps": 2.0, "min_pixels": 3136, "max_pixels": 12544, "backend": "pyav"}  # the demo's frame policy


def timed(pair, rows, judge, batch: int, condition: str, max_new_tokens: int, repeats: int = 1
          ) -> tuple[float, list[str]]:
    """Fastest wall time of `repeats` evaluations, and the answers (checked identical across repeats)."""
    cfg = EvalConfig(frames=FRAMES, batch_size=batch, max_new_tokens=max_new_tokens, progress=False)
    best, answers = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = evaluate(pair, rows, cfg, condition=condition, judge=judge)
        best = min(best, time.perf_counter() - t0)
        texts = [p["completion"] for p in res.predictions]
        if answers is not None and texts != answers:
            raise RuntimeError("greedy answers changed between repeats")
        answers = texts
    return best, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from vvkit.rewards import make_judge

    with tempfile.TemporaryDirectory() as tmp:
        build_dataset(SynthConfig(run_dir=tmp, num_videos=max(40, args.rows * 2), test_fraction=0.5, seed=0))
        rows = load_rows(Path(tmp) / "data" / "test.jsonl")[: args.rows]
        pair = load_policy(build_tiny_policy(Path(tmp) / "policy", seed=0))
        judge = make_judge(judge="offline")
        timed(pair, rows[:2], judge, 2, "video", 4)  # warm-up: judge weights, decoder process, kernels
        out: dict = {"machine": {"cpus": os.cpu_count(), "threads": args.threads, "python": platform.python_version(),
                                 "torch": torch.__version__, "load_average_1min_at_start": os.getloadavg()[0]},
                     "args": vars(args), "frames": FRAMES, "rows": len(rows),
                     "tasks": sorted({r.problem_type for r in rows})}
        for cond in ("video", "no_video"):
            t1, a1 = timed(pair, rows, judge, 1, cond, args.max_new_tokens, args.repeats)
            tb, ab = timed(pair, rows, judge, args.batch, cond, args.max_new_tokens, args.repeats)
            out[cond] = {"batch1_rows_per_s": len(rows) / t1, f"batch{args.batch}_rows_per_s": len(rows) / tb,
                         "speedup": t1 / tb, "same_answers": a1 == ab,
                         "answers_differing": sum(x != y for x, y in zip(a1, ab))}
            print(cond, out[cond])
        t0 = time.perf_counter()
        for cond in CONDITIONS:
            timed(pair, rows, judge, args.batch, cond, args.max_new_tokens)
        out["diagnose_four_conditions_s"] = time.perf_counter() - t0
        out["load_average_1min_at_end"] = os.getloadavg()[0]
        out["goal_same_answers"] = all(out[c]["same_answers"] for c in ("video", "no_video"))
    atomic_write_json(RESULTS, out)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
