"""Benchmark: G = 8 completions of one video prompt in one batched generate (vvkit, TRL) vs 8 sequential generates
(VersaVid-R1's trainer calls generate once per completion, paper §5).

The prompt is encoded once; only the generate calls are timed. Every completion is forced to the same length
(min_new_tokens = max_new_tokens) so both paths produce the same number of tokens. Model: the tiny offline
policy (1.1M parameters) on a 16-frame 112x112 toy video; on CUDA the same run uses the GPU. One CPU thread by
default: on a loaded 2-core machine two OpenMP threads spin-wait and a generate call runs ~50x slower.

    .venv/bin/python benchmarks/bench_rollout.py [--repeats 7] [--new-tokens 96] [--size tiny] [--threads 1]

Goal: batched >= 4x faster than sequential. Writes benchmarks/results/rollout.json (atomic).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vvkit.io import atomic_write_json
from vvkit.model import build_tiny_policy, count_parameters, load_policy
from vvkit.schema import Row
from vvkit.rollout import collate_prompts, encode_row
from vvkit.video import FramePolicy, write_video

HERE = Path(__file__).resolve().parent
FRAMES = {"fps": 2.0, "min_pixels": 56 * 56, "max_pixels": 112 * 112, "backend": "pyav", "timeout_s": 0}
GOAL = 4.0


def make_row(cache: Path) -> Row:
    """A 8 s, 4 fps, 112x112 video of a red square drifting right, as an mcq row."""
    path = cache / "rollout_video.mp4"
    if not path.exists():
        frames = np.full((32, 112, 112, 3), 96, np.uint8)
        for t in range(32):
            frames[t, 40:60, 10 + 2 * t:30 + 2 * t] = (230, 40, 40)
        write_video(frames, path, fps=4)
    options = ["A. red", "B. blue", "C. green", "D. white"]
    return Row("bench", str(path), "What colour is the shape?", "A", "mcq", options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--new-tokens", type=int, default=96, help="the default preset's max_completion_length")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--size", default="tiny", choices=["tiny", "micro"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = cache / f"policy_{args.size}"
    try:
        build_tiny_policy(folder, seed=0, size=args.size)
    except FileExistsError:  # built from an older tokenizer corpus: rebuild
        shutil.rmtree(folder)
        build_tiny_policy(folder, seed=0, size=args.size)
    model, processor = load_policy(folder, device=device)
    model.eval()
    row = make_row(cache)
    enc = encode_row(processor, row, FramePolicy.from_dict(FRAMES))[1]
    tok = processor.tokenizer
    gen = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.new_tokens,
               min_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)

    def inputs(n: int) -> dict:
        batch = collate_prompts([enc] * n, processor)
        return {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def batched() -> int:  # one generate for all G completions (TRL's generation batch, vvkit's sampling)
        return model.generate(**inputs(args.generations), **gen)[:, enc_len:].numel()

    @torch.no_grad()
    def sequential() -> int:  # G generate calls of one completion each (VersaVid-R1's compute_loss)
        return sum(model.generate(**inputs(1), **gen)[:, enc_len:].numel() for _ in range(args.generations))

    enc_len = len(enc.input_ids)
    times: dict[str, list[float]] = {"batched": [], "sequential": []}
    batched(), sequential()  # warm-up (allocator, caches)
    for _ in range(args.repeats):
        for mode, fn in (("batched", batched), ("sequential", sequential)):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            n_tokens = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times[mode].append(time.perf_counter() - t0)
            assert n_tokens == args.generations * args.new_tokens
    med = {m: statistics.median(v) for m, v in times.items()}
    ratio = med["sequential"] / med["batched"]
    best = min(times["sequential"]) / min(times["batched"])
    result = {
        "setup": {"device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{os.cpu_count()}",
                  "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                  "torch": torch.__version__, "policy": args.size, "parameters": count_parameters(model)["total"],
                  "prompt_tokens": len(enc.input_ids), "video_grid_thw": enc.video_grid_thw.tolist(),
                  "generations": args.generations, "new_tokens": args.new_tokens, "repeats": args.repeats,
                  "load_average_1min": os.getloadavg()[0]},
        "median_s": {m: round(v, 4) for m, v in med.items()},
        "times_s": {m: [round(t, 4) for t in v] for m, v in times.items()},
        "tokens_per_s": {m: round(args.generations * args.new_tokens / v, 1) for m, v in med.items()},
        "speedup_batched_vs_sequential": round(ratio, 2), "speedup_of_fastest_runs": round(best, 2),
        "goal": f">= {GOAL}x (medians)", "goal_met": ratio >= GOAL,
    }
    out_path = atomic_write_json(HERE / "results" / "rollout.json", result)
    print(f"G={args.generations}, {args.new_tokens} new tokens: batched {med['batched']:.3f} s, sequential "
          f"{med['sequential']:.3f} s -> {ratio:.1f}x (goal >= {GOAL}x) -> {out_path}")


if __name__ == "__main__":
    main()
