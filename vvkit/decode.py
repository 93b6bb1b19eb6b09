"""Decoding backends (decord, PyAV) and the decoder process that runs them under a deadline.

Unlike qwen-vl-utils, only the requested frame indices are decoded, and the backend is never swapped on error.
Decoding runs in a long-lived child process that the parent kills past `FramePolicy.timeout_s`, because decord can
spin forever holding the GIL on files whose container over-reports the frame count (dmlc/decord#373, #375) and leaks
native memory (#157, #208). This module imports nothing from vvkit: the child loads it by file path, skipping the
heavy package imports. The child exits quietly when its parent goes away (stdin EOF, broken pipe) or on SIGINT (a
notebook kernel shutting down signals its whole process group); any other failure still prints its traceback.
"""
from __future__ import annotations

import atexit
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

BACKENDS = ("decord", "pyav")


class VideoError(ValueError):
    """A video could not be read, sampled, edited or written; the message always names the file.

    Defined here, the lowest layer, so the decoder process can raise it without importing vvkit.
    """


# ----------------------------------------------------------------------------------------------- backends

_LOCAL = threading.local()    # per thread: the files opened by the current read's probes, reused by its decodes


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


def probe(path: str, backend: str, fresh: bool = True) -> dict:
    """Frame count, rate, size and per-frame timestamps (seconds) of `path` as seen by `backend`.

    The opened file is kept for the `decode` that follows. `fresh` first drops files kept by earlier reads (one that
    failed before decoding); a read of several sources passes fresh=False after its first, so each opens once.
    """
    if fresh:
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


def decode(path: str, backend: str, indices: list[int], size: tuple[int, int] | None) -> np.ndarray:
    """Decode only `indices` (sorted, unique) and resize each to `size` (PIL bicubic) -> (T, H, W, 3) uint8."""
    key = _file_key(path, backend)
    if key not in _cache():
        probe(path, backend, fresh=False)
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

_TASKS = {"probe": probe, "decode": decode, "sleep": time.sleep}   # "sleep" lets tests exercise the deadline
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
    """Decoder-process loop: run tasks sent on stdin, answer on the original stdout; quiet exit when the parent goes."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)   # SIGINT ends the process at once, even inside native code
    try:  # die with the parent even while stuck in native code
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, 9)
    except OSError:
        pass
    out = os.dup(1)
    os.dup2(2, 1)                        # stray prints from C libraries must not corrupt the answer pipe
    try:
        _send(out, ("ready", os.getpid()))
        while True:
            name, args = _recv(0)
            try:
                reply = ("ok", _TASKS[name](*args))
            except Exception as e:  # noqa: BLE001 - forwarded to the caller as a VideoError
                reply = ("err", str(e) if isinstance(e, VideoError) else f"{type(e).__name__}: {e}")
            _send(out, reply)
    except (EOFError, BrokenPipeError):  # the parent closed the pipes or exited: nothing left to answer
        return


# SIGINT is reset before the slow imports, so a kernel shutting down while the child starts leaves no traceback
_BOOT = ("import signal;signal.signal(signal.SIGINT,signal.SIG_DFL);import importlib.util,sys;"
         "s=importlib.util.spec_from_file_location('_vvkit_decoder',sys.argv[1]);m=importlib.util.module_from_spec(s);"
         "sys.modules[s.name]=m;s.loader.exec_module(m);m._worker_main()")


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


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def run_task(timeout_s: float, path: str, name: str, *args: Any) -> Any:
    """Run task `name` in-process (timeout_s == 0) or in the decoder process with a deadline -> VideoError."""
    global _PROC
    if timeout_s <= 0:
        return _TASKS[name](*args)
    with _PROC_LOCK:
        if _PROC is not None and (_PROC.pid != os.getpid() or _PROC.calls >= _RECYCLE_AFTER
                                  or _PROC.proc.poll() is not None):   # an idle child ended (e.g. by SIGINT)
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
            try:
                code = _PROC.proc.wait(1)
            except subprocess.TimeoutExpired:
                code = None
            _close_proc()
            raise VideoError(f"{path}: the decoding process died ({_exit_text(code)}); the file may crash the "
                             f"backend, try FramePolicy.backend='pyav' or re-encode it") from None
        except BaseException:
            _close_proc()  # e.g. KeyboardInterrupt mid-call: an unread answer would desynchronise the pipe
            raise
    if status != "ok":
        raise VideoError(payload if payload.startswith(path) else f"{path}: {payload}")
    return payload

