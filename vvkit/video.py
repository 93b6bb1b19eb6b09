"""Frame sampling for Qwen2.5-VL inputs: the frame policy, `read_video`, and the lazy mask / interleave edits.

Sampling follows the published qwen-vl-utils rules (frame count, uniform positions, pixel budget; see
`smart_nframes`, `smart_resize`, `frame_pixel_cap`), re-implemented here. vvkit differs from qwen-vl-utils in that
the backend is chosen explicitly and never swapped on error, and only the sampled frames are decoded, in a decoder
process with a deadline (`vvkit.decode`). Edits are applied at decode time, so DarkEventInfer / MixVidQA videos need
no re-encoding; `materialize` writes them out when a file is wanted. Writing lives in `vvkit.videowrite`.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vvkit.decode import BACKENDS, VideoError, run_task, trusted_frame_count
from vvkit.schema import EDIT_KINDS
from vvkit.videowrite import VideoWriter, write_video

__all__ = ["FramePolicy", "Clip", "read_video", "write_video", "VideoWriter", "materialize", "smart_nframes",
           "smart_resize", "frame_pixel_cap", "frame_size", "trusted_frame_count", "VideoError"]

FRAME_FACTOR = 2      # frames are taken in pairs (Qwen2.5-VL temporal patch size)
IMAGE_FACTOR = 28     # patch 14 x spatial merge 2
MAX_RATIO = 200       # qwen-vl-utils refuses frames more elongated than this
VIDEO_MAX_PIXELS = 768 * 28 * 28  # qwen-vl-utils' ceiling on the per-frame cap, whatever max_pixels asks for


# ----------------------------------------------------------------------------------------------- frame policy

@dataclass
class FramePolicy:
    """How frames are sampled and sized; field meanings follow qwen-vl-utils' video options (Qwen2.5 constants)."""

    fps: float = 2.0                              # sampling rate before clamping to [min_frames, max_frames]
    nframes: int | None = None                    # fixed frame count (rounded to even), overrides fps
    min_frames: int = 4
    max_frames: int = 768
    min_pixels: int = 128 * 28 * 28               # per-frame pixel floor
    max_pixels: int = 768 * 28 * 28               # per-frame pixel ceiling
    total_pixels: int = int(128000 * 28 * 28 * 0.9)  # budget over the whole clip (sets the per-frame cap)
    backend: str = "decord"                       # "decord" | "pyav"; never swapped silently
    timeout_s: float = 60.0                       # deadline per file in a decoder process; 0 = decode in-process

    def __post_init__(self) -> None:
        def num(name: str, integer: bool, low: float, strict: bool = False) -> None:
            v = getattr(self, name)
            ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type or (v <= low if strict else v < low):
                kind = "an integer" if integer else "a number"
                raise ValueError(f"FramePolicy.{name}={v!r}: must be {kind} {'>' if strict else '>='} {low}")

        num("fps", False, 0, strict=True)
        if self.nframes is not None:
            num("nframes", True, FRAME_FACTOR)
        num("min_frames", True, 1)
        num("max_frames", True, FRAME_FACTOR)
        if self.min_frames > self.max_frames:
            raise ValueError(f"FramePolicy: min_frames={self.min_frames} > max_frames={self.max_frames}")
        num("min_pixels", True, 1)
        num("max_pixels", True, 1)
        num("total_pixels", True, 1)
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"FramePolicy: min_pixels={self.min_pixels} > max_pixels={self.max_pixels}")
        if self.max_pixels > VIDEO_MAX_PIXELS:
            warnings.warn(f"FramePolicy.max_pixels={self.max_pixels} exceeds {VIDEO_MAX_PIXELS} (768*28*28): frames "
                          "are capped there, as qwen-vl-utils caps them", stacklevel=3)
        if self.backend not in BACKENDS:
            raise ValueError(f"FramePolicy.backend={self.backend!r}: choose one of {BACKENDS}")
        num("timeout_s", False, 0)
        self.fps, self.timeout_s = float(self.fps), float(self.timeout_s)

    def to_dict(self) -> dict:
        """Plain dict of every field (what `vvkit run` passes to notebooks as `frames`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FramePolicy":
        """Strict constructor: an unknown key is an error naming it and the valid keys."""
        if not isinstance(d, dict):
            raise ValueError(f"FramePolicy.from_dict: expected a dict, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"FramePolicy: unknown key(s) {unknown}; valid keys are {names}")
        return cls(**d)


def _round_by(x: float, f: int) -> int:
    return round(x / f) * f          # Python round: halves go to even, exactly as qwen-vl-utils


def _ceil_by(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def _floor_by(x: float, f: int) -> int:
    return math.floor(x / f) * f


def smart_nframes(frame_policy: FramePolicy, duration_s: float | None, video_fps: float, total_frames: int) -> int:
    """Number of frames to sample (qwen-vl-utils `smart_nframes` rule).

    fps rule: duration*fps clamped to [ceil_even(min_frames), floor_even(max_frames)], capped by total_frames, then
    floored to even. `nframes` rule: nframes rounded to even (Python rounding, as the reference). Either way the
    result must lie in [2, total_frames], else ValueError: vvkit never repeats frames to reach a count.
    `duration_s=None` means total_frames / video_fps.
    """
    if duration_s is None:
        duration_s = total_frames / video_fps
    if frame_policy.nframes is not None:
        n = _round_by(frame_policy.nframes, FRAME_FACTOR)
    else:
        lo, hi = _ceil_by(frame_policy.min_frames, FRAME_FACTOR), _floor_by(frame_policy.max_frames, FRAME_FACTOR)
        n = _floor_by(min(max(duration_s * frame_policy.fps, lo), hi, total_frames), FRAME_FACTOR)
    if not FRAME_FACTOR <= n <= total_frames:
        raise ValueError(f"needs {n} frames but only {total_frames} are available ({duration_s:.3f} s); "
                         f"lower FramePolicy.nframes, or use a longer clip/window")
    return n


def smart_resize(height: int, width: int, factor: int = IMAGE_FACTOR, min_pixels: float = 128 * 28 * 28,
                 max_pixels: float = 768 * 28 * 28) -> tuple[int, int]:
    """Target (H, W): multiples of `factor`, pixels in [min_pixels, max_pixels], aspect kept (qwen-vl-utils rule).

    Each side is rounded to the nearest multiple (at least one factor, so frames under 28 px grow to 28); if the area
    is then above max_pixels both sides are scaled down and floored (never below one factor), if below min_pixels
    they are scaled up and ceiled. Aspect ratios above 200 are refused, as in the reference.
    """
    if min(height, width) <= 0:
        raise ValueError(f"smart_resize: frame size {height}x{width} must be positive")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"smart_resize: aspect ratio {max(height, width) / min(height, width):.1f} of "
                         f"{height}x{width} exceeds {MAX_RATIO}")
    h = max(factor, _round_by(height, factor))
    w = max(factor, _round_by(width, factor))
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, _floor_by(height / beta, factor))
        w = max(factor, _floor_by(width / beta, factor))
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = _ceil_by(height * beta, factor), _ceil_by(width * beta, factor)
    return h, w


def frame_pixel_cap(frame_policy: FramePolicy, nframes: int) -> float:
    """Per-frame pixel cap, qwen-vl-utils 0.0.10 `fetch_video`:
    min(max_pixels, max(min(768*28*28, total_pixels / nframes * 2), int(min_pixels * 1.05)))."""
    budget = min(VIDEO_MAX_PIXELS, frame_policy.total_pixels / nframes * FRAME_FACTOR)
    return min(frame_policy.max_pixels, max(budget, int(frame_policy.min_pixels * 1.05)))


def frame_size(frame_policy: FramePolicy, height: int, width: int, nframes: int) -> tuple[int, int]:
    """The (H, W) every sampled frame is resized to for a clip of `nframes` frames."""
    return smart_resize(height, width, IMAGE_FACTOR, frame_policy.min_pixels, frame_pixel_cap(frame_policy, nframes))


@dataclass
class Clip:
    """Sampled frames plus everything needed to reproduce them (backend, fps, indices and size are recorded)."""

    frames: np.ndarray          # (T, H, W, 3) uint8, already resized per policy
    indices: np.ndarray         # (T,) frame index in its source video
    timestamps: np.ndarray      # (T,) seconds on the (edited) timeline
    sampled_fps: float          # frames per second of the sampled clip (T / duration); feeds second_per_grid_ts
    backend: str
    source_fps: float
    source_size: tuple[int, int]  # (H, W) of the (first) source
    duration: float             # seconds covered by the (edited) timeline that was sampled
    path: str | list[str]
    sources: np.ndarray | None = None  # (T,) source id per frame for interleave, else None


# ----------------------------------------------------------------------------------------------- edits and sampling

def _as_span(where: str, x: Any, n: int) -> tuple:
    if not isinstance(x, (list, tuple)) or len(x) != n or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                                                           or not math.isfinite(v) for v in x):
        raise VideoError(f"{where}: expected {n} numbers, got {x!r}")
    if not 0 <= x[-2] < x[-1]:
        raise VideoError(f"{where}: span {list(x[-2:])} must satisfy 0 <= start < end (seconds)")
    return tuple(x)


def _parse(path: Any, edits: dict | None) -> tuple[list[str], list[tuple], list[tuple] | None]:
    """Normalise paths and validate edits -> (paths, mask spans, interleave chunks or None)."""
    many = isinstance(path, (list, tuple))
    paths = [os.fspath(p) for p in path] if many else [os.fspath(path)]
    name = paths[0] if len(paths) == 1 else str(paths)
    edits = {} if edits is None else edits
    if not isinstance(edits, dict):
        raise VideoError(f"{name}: edits must be a dict like {{'mask': [[s, e]]}}, got {type(edits).__name__}")
    unknown = sorted(set(edits) - set(EDIT_KINDS))
    if unknown:
        raise VideoError(f"{name}: unknown edit key(s) {unknown}; valid keys are {list(EDIT_KINDS)}")
    mask_in, inter_in = edits.get("mask", []), edits.get("interleave")
    if not isinstance(mask_in, (list, tuple)):
        raise VideoError(f"{name}: edits['mask'] must be a list of [start, end] spans")
    mask = [_as_span(f"{name}: edits['mask'][{i}]", x, 2) for i, x in enumerate(mask_in)]
    inter = None
    if inter_in is not None:
        if not isinstance(inter_in, (list, tuple)) or not inter_in:
            raise VideoError(f"{name}: edits['interleave'] must be a non-empty list of [source, start, end]")
        inter = []
        for i, x in enumerate(inter_in):
            chunk = _as_span(f"{name}: edits['interleave'][{i}]", x, 3)
            if not isinstance(chunk[0], numbers.Integral) or not 0 <= chunk[0] < len(paths):
                raise VideoError(f"{name}: edits['interleave'][{i}] source index {chunk[0]!r} is out of range "
                                 f"for {len(paths)} video path(s)")
            inter.append((int(chunk[0]), float(chunk[1]), float(chunk[2])))
    elif many:
        raise VideoError(f"{name}: a list of paths needs an 'interleave' edit saying how to join them")
    for p in paths:
        if not os.path.isfile(p):
            raise VideoError(f"{p}: no such video file")
    return paths, mask, inter


def _probe_all(paths: list[str], used: list[int], backend: str, timeout_s: float) -> dict[int, dict]:
    """Probe each used source once; the decoder keeps each one open for the decode that follows."""
    infos = {}
    for k in used:
        info = run_task(timeout_s, paths[k], "probe", paths[k], backend, k == used[0])   # fresh on the first
        infos[k] = info
        if info["decoder_count"] > info["n"]:
            warnings.warn(f"{paths[k]}: decord reports {info['decoder_count']} frames but the container holds "
                          f"{info['n']}; sampling only those (dmlc/decord#373)", stacklevel=3)
    return infos


def _timeline(paths: list[str], infos: dict[int, dict], inter: list[tuple] | None, start: float | None,
              end: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Every frame of the (edited) timeline: (source id, source index, time on the timeline, duration)."""
    if inter is None:
        info = infos[0]
        n, fps = info["n"], info["fps"]
        first, last = 0, n - 1
        if start is not None or end is not None:   # qwen-vl-utils window rule: ceil the start, floor the end
            for v in (start, end):
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                    raise VideoError(f"{paths[0]}: start/end must be seconds >= 0, got start={start}, end={end}")
            if start is not None:
                first = math.ceil(round(min(start, n / fps) * fps, 6))
            if end is not None:
                last = min(math.floor(round(min(end, n / fps) * fps, 6)), n - 1)
            if first >= last:
                raise VideoError(f"{paths[0]}: window start={start} end={end} keeps fewer than 2 frames of a "
                                 f"{n / fps:.3f} s video")
        idx = np.arange(first, last + 1)
        return np.zeros(len(idx), np.int64), idx, info["times"][idx], len(idx) / fps
    if start is not None or end is not None:
        raise VideoError(f"{paths}: start/end cannot be combined with interleave; cut the chunks instead")
    src, idx, t, offset = [], [], [], 0.0
    for i, (k, s, e) in enumerate(inter):
        info = infos[k]
        dur = info["n"] / info["fps"]
        if e > dur + 1e-6:
            raise VideoError(f"{paths[k]}: edits['interleave'][{i}] ends at {e} s but source {k} lasts {dur:.3f} s")
        sel = np.nonzero((info["times"] >= s - 1e-6) & (info["times"] < e - 1e-6))[0]
        if len(sel) == 0:
            raise VideoError(f"{paths[k]}: edits['interleave'][{i}] [{s}, {e}) contains no frame")
        src.append(np.full(len(sel), k))
        idx.append(sel)
        t.append(np.round(offset + info["times"][sel] - s, 6))
        offset += e - s
    return np.concatenate(src), np.concatenate(idx), np.concatenate(t), offset


def _gather(paths: list[str], src: np.ndarray, idx: np.ndarray, size: tuple[int, int], backend: str,
            timeout_s: float) -> np.ndarray:
    """Decode frames (src[i], idx[i]) in order, each source once with sorted unique indices -> (T, H, W, 3)."""
    out = np.empty((len(src), size[0], size[1], 3), np.uint8)
    for k in np.unique(src):
        sel = np.nonzero(src == k)[0]
        uniq, inv = np.unique(idx[sel], return_inverse=True)
        out[sel] = run_task(timeout_s, paths[k], "decode", paths[k], backend, uniq.tolist(), size)[inv]
    return out


def _apply_mask(frames: np.ndarray, times: np.ndarray, mask: list[tuple]) -> None:
    for s, e in mask:
        frames[(times >= s - 1e-6) & (times < e - 1e-6)] = 0


def read_video(path: str | list[str], frame_policy: FramePolicy, start: float | None = None, end: float | None = None,
               edits: dict | None = None) -> Clip:
    """Sample a clip per `frame_policy`, decoding only the sampled frames; `edits` are applied lazily.

    mask: frames whose timestamp falls in a [s, e) span become black; positions are those of the unedited clip.
    interleave: `path` is a list; the timeline is the concatenation of [source, s, e) chunks, sampled uniformly,
    each frame pulled from its source and resized to the first source's size. start/end (seconds) cut a window
    with qwen-vl-utils' rule (ceil start, floor end).
    """
    paths, mask, inter = _parse(path, edits)
    used = sorted({c[0] for c in inter}) if inter else [0]
    infos = _probe_all(paths, used, frame_policy.backend, frame_policy.timeout_s)
    src, idx, t, duration = _timeline(paths, infos, inter, start, end)
    if start is None and end is None:   # a mask past the end of a shorter file would silently hide nothing
        frame = duration / len(t)
        for i, (s, e) in enumerate(mask):
            if e > duration + frame + 1e-6:
                raise VideoError(f"{paths[0] if len(paths) == 1 else paths}: edits['mask'][{i}] [{s}, {e}] ends past "
                                 f"the video's {duration:.3f} s; the file is shorter than its annotation")
    try:
        n = smart_nframes(frame_policy, duration, len(t) / duration, len(t))
        size = frame_size(frame_policy, infos[used[0]]["height"], infos[used[0]]["width"], n)
    except ValueError as e:
        raise VideoError(f"{paths[0] if len(paths) == 1 else paths}: {e}") from None
    pos = np.round(np.linspace(0, len(t) - 1, n)).astype(np.int64)
    frames = _gather(paths, src[pos], idx[pos], size, frame_policy.backend, frame_policy.timeout_s)
    _apply_mask(frames, t[pos], mask)
    first = infos[used[0]]
    return Clip(frames=frames, indices=idx[pos], timestamps=t[pos], sampled_fps=n / duration,
                backend=frame_policy.backend, source_fps=first["fps"], source_size=(first["height"], first["width"]),
                duration=duration, path=paths if inter else paths[0], sources=src[pos] if inter else None)


def materialize(path: str | list[str], edits: dict | None, out_path: str | os.PathLike, fps: float | None = None,
                *, backend: str = "pyav", timeout_s: float = 60.0, chunk: int = 64) -> Path:
    """Write the edited video (every timeline frame at the first source's fps; or resampled at `fps`) as an mp4.

    Frames keep the first source's size (other sources are resized to it; odd sizes are padded by one pixel).
    With `fps`, frame k shows the timeline frame at or before k / fps, so the duration is kept.
    """
    FramePolicy(backend=backend, timeout_s=timeout_s)      # validates both
    paths, mask, inter = _parse(path, edits)
    used = sorted({c[0] for c in inter}) if inter else [0]
    infos = _probe_all(paths, used, backend, timeout_s)
    src, idx, t, duration = _timeline(paths, infos, inter, None, None)
    first = infos[used[0]]
    out_fps = first["fps"] if fps is None else fps
    pick = np.arange(len(t))
    if fps is not None:
        grid = t[0] + np.arange(max(1, math.floor(duration * fps + 1e-6))) / fps
        pick = np.clip(np.searchsorted(t, grid + 1e-6, side="right") - 1, 0, len(t) - 1)
    with VideoWriter(out_path, out_fps, pad=True) as w:
        for i in range(0, len(pick), chunk):
            p = pick[i:i + chunk]
            frames = _gather(paths, src[p], idx[p], (first["height"], first["width"]), backend, timeout_s)
            _apply_mask(frames, t[p], mask)
            w.write(frames)
    return Path(out_path)
