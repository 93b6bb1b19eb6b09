"""Video decoding, frame sampling and lazy edits for Qwen2.5-VL inputs.

Sampling follows the published qwen-vl-utils rules (frame count, uniform positions, pixel budget; see
`smart_nframes`, `smart_resize`, `frame_pixel_cap`), re-implemented here. vvkit differs from qwen-vl-utils in three
ways: the backend is chosen explicitly and never swapped on error; only the sampled frames are
decoded; and decoding runs in a decoder process with a deadline (`FramePolicy.timeout_s`), because decord can spin
forever holding the GIL on files whose container over-reports the frame count (dmlc/decord#373, #375).
Edits (`mask`, `interleave`) are applied at decode time, so DarkEventInfer / MixVidQA videos need no re-encoding.
"""
from __future__ import annotations

import atexit
import dataclasses
import math
import numbers
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

FRAME_FACTOR = 2      # frames are taken in pairs (Qwen2.5-VL temporal patch size)
IMAGE_FACTOR = 28     # patch 14 x spatial merge 2
MAX_RATIO = 200       # qwen-vl-utils refuses frames more elongated than this
BACKENDS = ("decord", "pyav")
EDIT_KEYS = ("mask", "interleave")


class VideoError(ValueError):
    """A video could not be read, sampled or edited; the message always names the file."""


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


def smart_nframes(policy: FramePolicy, duration_s: float | None, video_fps: float, total_frames: int) -> int:
    """Number of frames to sample (qwen-vl-utils `smart_nframes` rule).

    fps rule: duration*fps clamped to [ceil_even(min_frames), floor_even(max_frames)], capped by total_frames, then
    floored to even. `nframes` rule: nframes rounded to even (Python rounding, as the reference). Either way the
    result must lie in [2, total_frames], else ValueError: vvkit never repeats frames to reach a count.
    `duration_s=None` means total_frames / video_fps.
    """
    if duration_s is None:
        duration_s = total_frames / video_fps
    if policy.nframes is not None:
        n = _round_by(policy.nframes, FRAME_FACTOR)
    else:
        lo, hi = _ceil_by(policy.min_frames, FRAME_FACTOR), _floor_by(policy.max_frames, FRAME_FACTOR)
        n = _floor_by(min(max(duration_s * policy.fps, lo), hi, total_frames), FRAME_FACTOR)
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


def frame_pixel_cap(policy: FramePolicy, nframes: int) -> float:
    """Per-frame pixel cap: min(max_pixels, max(total_pixels / nframes * 2, int(min_pixels * 1.05))) (qwen-vl-utils)."""
    return min(policy.max_pixels, max(policy.total_pixels / nframes * FRAME_FACTOR, int(policy.min_pixels * 1.05)))


def frame_size(policy: FramePolicy, height: int, width: int, nframes: int) -> tuple[int, int]:
    """The (H, W) every sampled frame is resized to for a clip of `nframes` frames."""
    return smart_resize(height, width, IMAGE_FACTOR, policy.min_pixels, frame_pixel_cap(policy, nframes))


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


# ----------------------------------------------------------------------------------------------- backends

_LOCAL = threading.local()    # per thread: the file opened by the last probe, reused by the decode that follows


def _cache() -> dict:
    if not hasattr(_LOCAL, "cache"):
        _LOCAL.cache = {}
    return _LOCAL.cache


def _file_key(path: str, backend: str) -> tuple:
    st = os.stat(path)
    return (backend, path, st.st_mtime_ns, st.st_size)


def _header(path: str, demux: bool) -> dict:
    """PyAV view of the container: size, rate, nominal frame count and (if demux) per-frame pts and keyframes."""
    import av

    try:
        container = av.open(path)
    except Exception as e:  # noqa: BLE001 - every opening failure means the same thing to the user
        raise VideoError(f"{path}: not a readable video container ({e}); the file is truncated, corrupt "
                         f"or not a video") from None
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoError(f"{path}: has no video stream (streams: {', '.join(kinds)})")
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        info = {"height": s.codec_context.height, "width": s.codec_context.width, "fps": float(rate or 0),
                "nominal": int(s.frames or 0), "codec": s.codec_context.name,
                "duration": float(s.duration * s.time_base) if s.duration else None}
        if info["height"] <= 0 or info["width"] <= 0 or info["fps"] <= 0:
            raise VideoError(f"{path}: unreadable video stream ({info['codec']}, {info['width']}x{info['height']} "
                             f"at {info['fps']} fps); re-encode it, e.g. ffmpeg -i in -c:v libx264 out.mp4")
        if demux or info["nominal"] == 0:
            pts, keys, packets = [], [], 0
            for p in container.demux(s):
                packets += p.size > 0
                if p.pts is not None and not p.is_discard:
                    pts.append(p.pts)
                    if p.is_keyframe:
                        keys.append(p.pts)
            if packets < info["nominal"]:
                raise VideoError(f"{path}: truncated or corrupt: the index lists {info['nominal']} frames but only "
                                 f"{packets} are in the file")
            info["pts"], info["keys"] = np.sort(np.asarray(pts, np.int64)), np.sort(np.asarray(keys, np.int64))
            info["nominal"] = len(pts)
            start = s.start_time if s.start_time is not None else (int(info["pts"][0]) if pts else 0)
            info["times"] = np.round((info["pts"] - start) * float(s.time_base), 6)
        if info["nominal"] == 0:
            raise VideoError(f"{path}: the video stream has zero frames (or its index is corrupt)")
        return info
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoError(f"{path}: corrupt or unreadable video stream ({e})") from None
    finally:
        container.close()


def trusted_frame_count(decoder_count: int, nominal: int, duration_s: float | None, fps: float) -> int:
    """Frame count safe to index: decord's count capped by the container's (callers warn when they differ).

    decord indexes past the real end when a container over-reports frames and then never returns (dmlc/decord#373),
    so indices are computed from the smaller of the decoder count, the nominal count and duration*fps (the last one
    only when it is short by more than 2 frames, so ordinary rounding never trims the final frame).
    """
    n = min(decoder_count, nominal) if nominal > 0 else decoder_count
    if duration_s and duration_s * fps + 2 < n:
        n = int(math.floor(duration_s * fps))
    return n


def _probe(path: str, backend: str) -> dict:
    """Frame count, rate, size and per-frame timestamps (seconds) of `path` as seen by `backend`."""
    _cache().clear()
    info = _header(path, demux=backend == "pyav")
    if backend == "decord":
        import decord

        try:
            vr = decord.VideoReader(path, ctx=decord.cpu(0))
            count = len(vr)
        except Exception as e:  # noqa: BLE001
            raise VideoError(f"{path}: decord could not open the video stream; the file is likely truncated or "
                             f"corrupt ({str(e).splitlines()[0][:300]})") from None
        if count < info["nominal"]:
            raise VideoError(f"{path}: truncated or corrupt: the index lists {info['nominal']} frames but decord "
                             f"finds only {count}")
        n = trusted_frame_count(count, info["nominal"], info["duration"], info["fps"])
        if n <= 0:
            raise VideoError(f"{path}: the video stream has zero frames")
        info["times"] = np.round(vr.get_frame_timestamp(np.arange(n))[:, 0].astype(np.float64), 6)
        info["decoder_count"], info["nominal"] = count, n
        _cache()[_file_key(path, backend)] = vr
    else:
        _cache()[_file_key(path, backend)] = (info["pts"], info["keys"])
    return {"n": info["nominal"], "fps": info["fps"], "times": info["times"], "height": info["height"],
            "width": info["width"], "decoder_count": info.get("decoder_count", info["nominal"])}


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def _decode(path: str, backend: str, indices: list[int], size: tuple[int, int] | None) -> np.ndarray:
    """Decode only `indices` (sorted, unique) and resize each to `size` (PIL bicubic) -> (T, H, W, 3) uint8."""
    key = _file_key(path, backend)
    if key not in _cache():
        _probe(path, backend)
    opened = _cache().pop(key) if backend == "decord" else _cache()[key]   # pyav keeps its cheap pts index
    pool = ThreadPoolExecutor(1)         # resizing overlaps decoding (both release the GIL)
    try:
        if backend == "decord":
            futures = []
            for i in range(0, len(indices), 4):
                batch = opened.get_batch(indices[i:i + 4]).asnumpy()
                futures += [pool.submit(_resize, f, size) for f in batch]
            opened.seek(0)               # releases decoder buffers (leak workaround, dmlc/decord#197)
        else:
            futures = [pool.submit(_resize, f, size) for f in _pyav_frames(path, indices, *opened)]
        return np.stack([f.result() for f in futures])
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise VideoError(f"{path}: corrupt video data while decoding with {backend} ({detail})") from None
    finally:
        pool.shutdown()
        del opened


def _pyav_frames(path: str, indices: list[int], pts: np.ndarray, keys: np.ndarray):
    """Yield RGB frames at `indices`, seeking to a keyframe only when that beats decoding forward."""
    import av

    container = av.open(path)
    try:
        stream = container.streams.video[0]
        frames, cur = None, None
        for i in indices:
            target = int(pts[i])
            k = np.searchsorted(keys, target, side="right") - 1
            key = int(keys[k]) if k >= 0 else target
            if frames is None or cur is None or target <= cur or key > cur:
                container.seek(target, stream=stream, backward=True)
                frames = container.decode(stream)
            found = None
            for f in frames:
                if f.pts is None or f.pts < target:
                    continue
                cur, found = f.pts, f
                break
            if found is None or found.pts != target:
                raise VideoError(f"{path}: frame {i} could not be decoded (stream ended or skipped it); "
                                 f"the file is truncated or corrupt")
            yield found.to_ndarray(format="rgb24")
    finally:
        container.close()


# ----------------------------------------------------------------------------------------------- decoder process

_TASKS = {"probe": _probe, "decode": _decode, "sleep": time.sleep}   # "sleep" lets tests exercise the deadline
_RECYCLE_AFTER = 200     # decord leaks native memory (dmlc/decord#157, #208): start a fresh process now and then


def _send(fd: int, obj: Any) -> None:
    """Pickle `obj` with its array buffers sent out of band (no extra copies of the frames)."""
    bufs: list = []
    meta = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
    raws = [b.raw() for b in bufs]
    head = struct.pack(f"<{2 + len(raws)}Q", len(raws), len(meta), *[r.nbytes for r in raws])
    for part in (head, meta, *raws):
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view):]


def _recv(fd: int, deadline: float | None = None) -> Any:
    """Read one `_send` message; TimeoutError past `deadline`, EOFError if the other end is gone."""
    def exact(n: int) -> bytearray:
        buf = bytearray(n)
        view, pos = memoryview(buf), 0
        while pos < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise TimeoutError
            got = os.readv(fd, [view[pos:]])
            if got == 0:
                raise EOFError
            pos += got
        return buf

    nbufs, nmeta = struct.unpack("<2Q", exact(16))
    sizes = struct.unpack(f"<{nbufs}Q", exact(8 * nbufs)) if nbufs else ()
    meta = exact(nmeta)
    return pickle.loads(meta, buffers=[exact(n) for n in sizes])


def _worker_main() -> None:
    """Decoder-process loop: run tasks sent on stdin, answer on the original stdout."""
    try:  # die with the parent even while stuck in native code
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, 9)
    except OSError:
        pass
    out = os.dup(1)
    os.dup2(2, 1)                        # stray prints from C libraries must not corrupt the answer pipe
    _send(out, ("ready", os.getpid()))
    while True:
        try:
            name, args = _recv(0)
        except EOFError:
            return
        try:
            reply = ("ok", _TASKS[name](*args))
        except Exception as e:  # noqa: BLE001 - forwarded to the caller as a VideoError
            reply = ("err", str(e) if isinstance(e, VideoError) else f"{type(e).__name__}: {e}")
        _send(out, reply)


_BOOT = ("import importlib.util,sys;s=importlib.util.spec_from_file_location('_vvkit_video_decoder',sys.argv[1]);"
         "m=importlib.util.module_from_spec(s);sys.modules[s.name]=m;s.loader.exec_module(m);m._worker_main()")


class _DecoderProcess:
    """One long-lived decoding process; loaded by file path so it skips the heavy `vvkit` package imports."""

    def __init__(self) -> None:
        self.pid, self.calls = os.getpid(), 0
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, __file__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, close_fds=True)
        try:
            import fcntl
            fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        try:
            _recv(self.proc.stdout.fileno(), time.monotonic() + 120)
        except (TimeoutError, EOFError):
            self.kill()
            raise VideoError("video decoder process failed to start (see stderr)") from None

    def call(self, name: str, args: tuple, timeout: float) -> tuple[str, Any]:
        self.calls += 1
        _send(self.proc.stdin.fileno(), (name, args))
        return _recv(self.proc.stdout.fileno(), time.monotonic() + timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


_PROC: _DecoderProcess | None = None
_PROC_LOCK = threading.Lock()


def _close_proc() -> None:
    global _PROC
    if _PROC is not None:
        if _PROC.pid == os.getpid():
            _PROC.kill()
        else:            # a forked child drops its copy of the parent's pipes and never kills the parent's process
            _PROC.proc.stdin.close()
            _PROC.proc.stdout.close()
    _PROC = None


atexit.register(_close_proc)


def _run(timeout_s: float, path: str, name: str, *args: Any) -> Any:
    """Run task `name` in-process (timeout_s == 0) or in the decoder process with a deadline -> VideoError."""
    global _PROC
    if timeout_s <= 0:
        return _TASKS[name](*args)
    with _PROC_LOCK:
        if _PROC is not None and (_PROC.pid != os.getpid() or _PROC.calls >= _RECYCLE_AFTER):
            _close_proc()
        if _PROC is None:
            _PROC = _DecoderProcess()
        try:
            status, payload = _PROC.call(name, args, timeout_s)
        except TimeoutError:
            _close_proc()
            raise VideoError(f"{path}: decoding did not finish within FramePolicy.timeout_s={timeout_s} s and was "
                             f"stopped (decord can hang on broken files, dmlc/decord#373); raise timeout_s for very "
                             f"long videos, or re-encode the file (ffmpeg -i in -c:v libx264 out.mp4)") from None
        except (EOFError, OSError):
            code = _PROC.proc.poll()
            _close_proc()
            raise VideoError(f"{path}: the decoding process died (exit code {code}); the file may crash the "
                             f"backend, try FramePolicy.backend='pyav' or re-encode it") from None
        except BaseException:
            _close_proc()  # e.g. KeyboardInterrupt mid-call: an unread answer would desynchronise the pipe
            raise
    if status != "ok":
        raise VideoError(payload if payload.startswith(path) else f"{path}: {payload}")
    return payload


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
    unknown = sorted(set(edits) - set(EDIT_KEYS))
    if unknown:
        raise VideoError(f"{name}: unknown edit key(s) {unknown}; valid keys are {list(EDIT_KEYS)}")
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


def _probe_checked(path: str, backend: str, timeout_s: float) -> dict:
    info = _run(timeout_s, path, "probe", path, backend)
    if info["decoder_count"] > info["n"]:
        warnings.warn(f"{path}: decord reports {info['decoder_count']} frames but the container holds {info['n']}; "
                      f"sampling only those (dmlc/decord#373)", stacklevel=3)
    return info


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
        out[sel] = _run(timeout_s, paths[k], "decode", paths[k], backend, uniq.tolist(), size)[inv]
    return out


def _apply_mask(frames: np.ndarray, times: np.ndarray, mask: list[tuple]) -> None:
    for s, e in mask:
        frames[(times >= s - 1e-6) & (times < e - 1e-6)] = 0


def read_video(path: str | list[str], policy: FramePolicy, start: float | None = None, end: float | None = None,
               edits: dict | None = None) -> Clip:
    """Sample a clip per `policy`, decoding only the sampled frames; `edits` are applied lazily.

    mask: frames whose timestamp falls in a [s, e) span become black; positions are those of the unedited clip.
    interleave: `path` is a list; the timeline is the concatenation of [source, s, e) chunks, sampled uniformly,
    each frame pulled from its source and resized to the first source's size. start/end (seconds) cut a window
    with qwen-vl-utils' rule (ceil start, floor end).
    """
    paths, mask, inter = _parse(path, edits)
    used = sorted({c[0] for c in inter}) if inter else [0]
    infos = {k: _probe_checked(paths[k], policy.backend, policy.timeout_s) for k in used}
    src, idx, t, duration = _timeline(paths, infos, inter, start, end)
    try:
        n = smart_nframes(policy, duration, len(t) / duration, len(t))
        size = frame_size(policy, infos[used[0]]["height"], infos[used[0]]["width"], n)
    except ValueError as e:
        raise VideoError(f"{paths[0] if len(paths) == 1 else paths}: {e}") from None
    pos = np.round(np.linspace(0, len(t) - 1, n)).astype(np.int64)
    frames = _gather(paths, src[pos], idx[pos], size, policy.backend, policy.timeout_s)
    _apply_mask(frames, t[pos], mask)
    first = infos[used[0]]
    return Clip(frames=frames, indices=idx[pos], timestamps=t[pos], sampled_fps=n / duration,
                backend=policy.backend, source_fps=first["fps"], source_size=(first["height"], first["width"]),
                duration=duration, path=paths if inter else paths[0], sources=src[pos] if inter else None)


# ----------------------------------------------------------------------------------------------- writing

class VideoWriter:
    """Streaming libx264 / yuv420p mp4 writer; the file appears only on a clean close (temp file + os.replace)."""

    def __init__(self, path: str | os.PathLike, fps: float, *, crf: int = 18, preset: str = "veryfast",
                 keyint: int | None = None, pad: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise VideoError(f"{self.path}: write videos as .mp4 (libx264 in an mp4 container)")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise VideoError(f"{self.path}: fps must be a positive number, got {fps!r}")
        self.fps, self.crf, self.preset, self.keyint, self.pad = fps, crf, preset, keyint, pad
        self.tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp"
        self.container, self.stream, self.count = None, None, 0

    def write(self, frames: np.ndarray) -> None:
        """Append one (H, W, 3) frame or a (T, H, W, 3) batch of uint8 RGB frames."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VideoError(f"{self.path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        h, w = frames.shape[1:3]
        if h % 2 or w % 2:
            if not self.pad:
                raise VideoError(f"{self.path}: libx264 yuv420p needs even height and width, got {h}x{w}; crop "
                                 f"the frames or pass pad=True (repeats the last row/column)")
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self.stream is None:
            self._open(frames.shape[1], frames.shape[2])
        elif (frames.shape[1], frames.shape[2]) != (self.stream.height, self.stream.width):
            raise VideoError(f"{self.path}: frame size {frames.shape[1:3]} differs from the first frame's "
                             f"{(self.stream.height, self.stream.width)}")
        import av

        for f in frames:
            for packet in self.stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                self.container.mux(packet)
        self.count += len(frames)

    def _open(self, h: int, w: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        self.stream.height, self.stream.width, self.stream.pix_fmt = h, w, "yuv420p"
        opts = {"crf": str(self.crf), "preset": self.preset}
        if self.keyint:
            opts["g"] = str(self.keyint)
        self.stream.options = opts

    def close(self) -> Path:
        """Flush the encoder and move the finished file into place."""
        if self.stream is None:
            raise VideoError(f"{self.path}: no frames were written")
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            self.container = None
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self.container is not None:
            self.container.close()
            self.container = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float, *, crf: int = 18,
                pad: bool = False) -> Path:
    """Write (T, H, W, 3) uint8 frames as an h264 mp4, atomically; odd sizes are refused unless pad=True."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise VideoError(f"{path}: frames must be a non-empty (T, H, W, 3) array, got shape {frames.shape}")
    with VideoWriter(path, fps, crf=crf, pad=pad) as w:
        w.write(frames)
    return Path(path)


def materialize(path: str | list[str], edits: dict | None, out_path: str | os.PathLike, fps: float | None = None,
                *, backend: str = "pyav", timeout_s: float = 60.0, chunk: int = 64) -> Path:
    """Write the edited video (every timeline frame at the first source's fps; or resampled at `fps`) as an mp4.

    Frames keep the first source's size (other sources are resized to it; odd sizes are padded by one pixel).
    With `fps`, frame k shows the timeline frame at or before k / fps, so the duration is kept.
    """
    FramePolicy(backend=backend, timeout_s=timeout_s)      # validates both
    paths, mask, inter = _parse(path, edits)
    used = sorted({c[0] for c in inter}) if inter else [0]
    infos = {k: _probe_checked(paths[k], backend, timeout_s) for k in used}
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
