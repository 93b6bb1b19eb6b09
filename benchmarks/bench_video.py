"""Benchmark: sample 16 frames from a 60 s 640x360 h264 video with vvkit and with the paper's reference path.

The reference path is what VersaVid-R1's patched qwen-vl-utils does: decord `get_batch` of every frame the 2 fps
rule asks for (120 frames here), keep 16 of them with a linspace, then resize those 16. vvkit decodes only the 16
sampled frames. The speed-up depends on keyframe spacing (a seek lands on the previous keyframe and decodes forward),
so two encodings of the same content are timed: x264's default keyframe interval (250) and one keyframe per second.
vvkit rows include the policy's resize (360x640 -> 364x644, PIL bicubic) and, unless "in-process", the round trip to
the decoder process; "raw decord get_batch" does no resize, "raw decord + same resize" is the like-for-like baseline.

    .venv/bin/python benchmarks/bench_video.py [--repeats 5] [--keyint 250 30]

Goals: vvkit/decord >= 0.9x the speed of raw decord get_batch; >= 5x faster than the reference path.
Writes benchmarks/results/video.json (atomic); videos are cached in benchmarks/.cache/.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import av
import decord
import numpy as np
from PIL import Image

from vvkit.io import atomic_write_json
from vvkit.video import FramePolicy, VideoWriter, frame_size, read_video, smart_nframes

HERE = Path(__file__).resolve().parent
SECONDS, FPS, H, W, NFRAMES = 60, 30, 360, 640, 16
RAW, RAW_RESIZE = "raw decord get_batch (no resize)", "raw decord + same resize"
VVKIT, REF = "vvkit/decord (incl. resize)", "reference (2 fps, keep 16)"


def make_video(path: Path, keyint: int | None) -> Path:
    """Textured, moving 640x360 content with mild noise (so frames cost what camera footage roughly costs)."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 255, (H // 8 + 1, 2 * W // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    ramp = np.linspace(0, 60, W, dtype=np.float32)[None, :, None]
    with VideoWriter(path, FPS, crf=23, keyint=keyint) as w:
        for i in range(SECONDS * FPS):
            x = (3 * i) % W
            frame = tiles[(i // 4) % 8: (i // 4) % 8 + H, x: x + W].astype(np.float32) * 0.7 + ramp
            frame += rng.normal(0, 4, frame.shape).astype(np.float32)
            w.write(np.clip(frame, 0, 255).astype(np.uint8))
    return path


def _pil_resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.Resampling.BICUBIC))
                     for f in frames])


def methods(path: str) -> dict:
    """name -> zero-argument callable returning the sampled frames."""
    n = len(decord.VideoReader(path))
    idx16 = np.round(np.linspace(0, n - 1, NFRAMES)).astype(int).tolist()
    size = frame_size(FramePolicy(), H, W, NFRAMES)
    ref_n = smart_nframes(FramePolicy(fps=2.0), n / FPS, FPS, n)              # 120 frames at 2 fps
    ref_idx = np.round(np.linspace(0, n - 1, ref_n)).astype(int).tolist()
    keep = np.linspace(0, ref_n - 1, NFRAMES).astype(int)                   # torch .long() truncates

    def raw_decord() -> np.ndarray:
        vr = decord.VideoReader(path)
        return vr.get_batch(idx16).asnumpy()

    def raw_decord_resize() -> np.ndarray:
        return _pil_resize(raw_decord(), size)

    def reference() -> np.ndarray:
        vr = decord.VideoReader(path)
        return _pil_resize(vr.get_batch(ref_idx).asnumpy()[keep], size)

    def vvkit(backend: str, timeout_s: float = 60.0):
        policy = FramePolicy(nframes=NFRAMES, backend=backend, timeout_s=timeout_s)
        return lambda: read_video(path, policy).frames

    return {RAW: raw_decord, RAW_RESIZE: raw_decord_resize, VVKIT: vvkit("decord"),
            "vvkit/decord in-process (incl. resize)": vvkit("decord", 0.0), "vvkit/pyav (incl. resize)": vvkit("pyav"),
            REF: reference}


def bench(path: str, repeats: int) -> dict[str, list[float]]:
    fns = methods(path)
    names = list(fns)
    for fn in fns.values():                                   # warm-up: imports, decoder process, page cache
        fn()
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:             # rotate the order each round
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    same = np.array_equal(fns[VVKIT](), fns[RAW_RESIZE]())
    return {"times": times, "frames_match_raw_decord": bool(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keyint", type=int, nargs="+", default=[250, 30], help="keyframe intervals to encode")
    args = ap.parse_args()
    report = {"setup": {"video": f"{SECONDS} s {W}x{H} h264 crf 23 {FPS} fps", "nframes": NFRAMES,
                        "repeats": args.repeats, "cpus": os.cpu_count(), "python": platform.python_version(),
                        "decord": decord.__version__, "av": av.__version__,
                        "load_average_1min": round(os.getloadavg()[0], 2)}, "videos": []}
    for keyint in args.keyint:
        path = make_video(HERE / ".cache" / f"bench_{SECONDS}s_{W}x{H}_keyint{keyint}.mp4", keyint)
        res = bench(str(path), args.repeats)
        med = {k: statistics.median(v) for k, v in res["times"].items()}
        raw, raw_resize, ref = med[RAW], med[RAW_RESIZE], med[REF]
        print(f"\nkeyint {keyint} ({path.name}); medians of {args.repeats}; vvkit/decord frames identical to raw "
              f"decord + same resize: {res['frames_match_raw_decord']}")
        print(f"{'method':40s} {'median s':>9s} {'raw/this':>9s} {'raw+rs/this':>12s} {'ref/this':>9s}")
        rows = []
        for k, v in med.items():
            rows.append({"method": k, "median_s": round(v, 4), "speed_vs_raw_decord": round(raw / v, 3),
                         "speed_vs_raw_decord_resize": round(raw_resize / v, 3),
                         "speedup_vs_reference": round(ref / v, 3), "times_s": [round(x, 4) for x in res["times"][k]]})
            print(f"{k:40s} {v:9.3f} {raw / v:9.2f} {raw_resize / v:12.2f} {ref / v:9.2f}")
        ok = {"vvkit/decord >= 0.9x raw get_batch (no resize)": raw / med[VVKIT] >= 0.9,
              "vvkit/decord >= 0.9x raw + same resize": raw_resize / med[VVKIT] >= 0.9,
              "vvkit/decord >= 5x reference": ref / med[VVKIT] >= 5}
        for goal, met in ok.items():
            print(f"  goal {goal}: {'met' if met else 'NOT met'}")
        report["videos"].append({"keyint": keyint, "file": path.name, "rows": rows, "goals_met": ok,
                                 "frames_match_raw_decord": res["frames_match_raw_decord"]})
    report["setup"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    atomic_write_json(HERE / "results" / "video.json", report)
    print(f"\nwrote {HERE / 'results' / 'video.json'}")


if __name__ == "__main__":
    main()
