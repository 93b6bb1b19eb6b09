"""Benchmark: encode already-sampled frames with the kit's processor (`vvkit.processing.get_processor`).

Times one `processor(text=[...], videos=[frames], video_metadata=..., return_tensors="pt")` call, the call every
rollout and evaluation makes, at the demo setting (8 frames, 56x56) and at two larger frame-policy sizes (16 frames at
the paper preset's 196*28*28 pixel cap, 32 frames at 448x448). Rows are keyed by the video processor's class name, so
a run of the hand-written processor and a run of transformers' stock one sit side by side in one file.

    .venv/bin/python benchmarks/bench_processor.py [--repeats 20]

Writes benchmarks/results/processor.json (atomic; rows of other processor classes are kept).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vvkit.io import atomic_write_json
from vvkit.model import build_tiny_policy
from vvkit.processing import get_processor, video_metadata

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "processor.json"
SETTINGS = [(8, 56, 56), (16, 392, 392), (32, 448, 448)]  # (frames, height, width); each a fixed point of the resize
MESSAGES = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What colour is the shape?"}]}]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def time_setting(processor, t: int, h: int, w: int, repeats: int) -> dict:
    """Median and spread of `repeats` encodes of one random (t, h, w, 3) uint8 clip at 2 fps, after one warm-up."""
    frames = np.random.default_rng(0).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True)

    def encode():
        return processor(text=[text], videos=[frames], video_metadata=video_metadata([frames], 2.0),
                         return_tensors="pt")

    enc = encode()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode()
        times.append(time.perf_counter() - start)
    return {"frames": t, "height": h, "width": w, "patches": int(enc["pixel_values_videos"].shape[0]),
            "median_ms": round(1000 * statistics.median(times), 3), "min_ms": round(1000 * min(times), 3),
            "max_ms": round(1000 * max(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the tests and the demo on a shared 2-core machine
    with tempfile.TemporaryDirectory() as tmp:
        processor = get_processor(build_tiny_policy(Path(tmp) / "micro", seed=0, size="micro"))
        name = type(processor.video_processor).__name__
        rows = [time_setting(processor, *s, repeats=args.repeats) for s in SETTINGS]
    found = json.loads(OUT.read_text()) if OUT.is_file() else {}
    runs = {r["video_processor"]: r for r in found.get("runs", [])}
    runs[name] = {"video_processor": name, "module": type(processor.video_processor).__module__,
                  "commit": _commit(), "torch": torch.__version__, "rows": rows}
    setup = {"repeats": args.repeats, "threads": 1, "cpus": os.cpu_count(), "python": platform.python_version(),
             "fps": 2.0, "load_average_1min": round(os.getloadavg()[0], 2)}
    atomic_write_json(OUT, {"setup": setup, "runs": sorted(runs.values(), key=lambda r: r["video_processor"])})
    for row in rows:
        print(f"{name:28s} {row['frames']:3d}x{row['height']}x{row['width']}: {row['median_ms']:8.2f} ms median")


if __name__ == "__main__":
    main()
