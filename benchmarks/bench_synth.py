"""Benchmark of data synthesis: toy-world rendering rate, and the cost of lazy video edits.

Lazy edits (DarkEventInfer masks, MixVidQA interleaving) are applied while frames are read. Goals: reading an edited
row costs at most 10% more than sampling the same frames from the unedited source(s), and is at least 20x faster
than writing the edited mp4 per sample and reading that. Results go to benchmarks/results/synth.json.

    .venv/bin/python benchmarks/bench_synth.py [--videos 24] [--rows 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from vvkit.config import SynthConfig
from vvkit.io import atomic_write_json
from vvkit.schema import load_rows
from vvkit.synth import build_dataset, generate, materialize_row, render
from vvkit.video import FramePolicy, read_video, write_video

RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_render(n: int, size: int, tmp: Path) -> dict:
    """Videos per second: script + render (numpy), and script + render + mp4 encode."""
    t0 = time.perf_counter()
    for i in range(n):
        render(generate(i, "full", size=size))
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n):
        v = generate(i, "full", size=size)
        write_video(render(v), tmp / f"r{i}.mp4", v.fps)
    t_write = time.perf_counter() - t0
    return {"videos": n, "size": size, "render_videos_per_s": n / t_render, "render_write_videos_per_s": n / t_write}


def _plain(row, policy: FramePolicy):
    """A callable reading the same frames without edits: the source of a mask row; for an interleave row, each
    source with the number of frames the lazy read takes from it (counted once, outside the timing)."""
    if "mask" in row.edits:
        return lambda: read_video(row.video, policy)
    lazy = read_video(row.video, policy, edits=row.edits)
    reads = []
    for k, path in enumerate(row.video):
        count = int((lazy.sources == k).sum())
        reads.append((path, FramePolicy(**{**policy.to_dict(), "nframes": max(2, count - count % 2)})))
    return lambda: [read_video(p, pol) for p, pol in reads]


def bench_edits(rows: list, policy: FramePolicy, repeats: int, tmp: Path) -> dict:
    """Median seconds per row: plain sampling, lazy edited sampling, materialize + read."""
    plain = lazy = mat = 0.0
    for i, row in enumerate(rows):
        plain += _median_time(_plain(row, policy), repeats)
        lazy += _median_time(lambda: read_video(row.video, policy, edits=row.edits), repeats)
        mat += _median_time(lambda: read_video(str(materialize_row(row, str(tmp / f"m{i}.mp4"))), policy), 1)
    n = len(rows)
    return {"rows": n, "plain_s_per_row": plain / n, "lazy_s_per_row": lazy / n,
            "materialize_then_read_s_per_row": mat / n, "lazy_overhead": lazy / plain - 1.0,
            "lazy_speedup_vs_materialize": mat / lazy,
            "goal_overhead_le_10pct": lazy / plain - 1.0 <= 0.10, "goal_speedup_ge_20x": mat / lazy >= 20}


SCALES = {  # toy: what the kit trains on; large: closer to real clips (Kinetics ~10 s at 25-30 fps, paper §2)
    "toy": dict(size=112, fps=8.0, min_duration=6.0, max_duration=12.0),
    "large": dict(size=224, fps=30.0, min_duration=9.0, max_duration=11.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=24, help="source videos per scale")
    ap.add_argument("--rows", type=int, default=8, help="rows timed per task, scale and backend")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "args": vars(args),
                 "frame_policy": "fps=2, frames kept at source size"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["render"] = bench_render(args.videos, SCALES["toy"]["size"], tmp)
        print("render", out["render"])
        for scale, kw in SCALES.items():
            cfg = SynthConfig(run_dir=str(tmp / scale), num_videos=args.videos, test_fraction=0.0,
                              task_mix={"dark_event": 1.0, "mixvid": 1.0}, samples_per_video=2, **kw)
            build_dataset(cfg)
            rows = load_rows(tmp / scale / "data" / "train.jsonl")
            for backend in ("decord", "pyav"):
                policy = FramePolicy(fps=2.0, min_pixels=kw["size"] ** 2, max_pixels=kw["size"] ** 2, backend=backend)
                for task in ("dark_event", "mixvid"):
                    picked = [r for r in rows if r.problem_type == task][: args.rows]
                    key = f"{scale}/{task}/{backend}"
                    out[key] = {**bench_edits(picked, policy, args.repeats, tmp), **kw}
                    print(key, {k: round(v, 4) if isinstance(v, float) else v for k, v in out[key].items()})
    atomic_write_json(RESULTS, out)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
