"""Writing videos: a streaming libx264 mp4 writer whose file appears only when complete, and `write_video`.

Used for the synthetic toy videos, materialized edits and tests; PyAV (not OpenCV, not an ffmpeg subprocess) so the
encoder settings (crf, preset, keyframe interval) are explicit and no extra binary is needed.
"""
from __future__ import annotations

import os
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

from vvkit.decode import VideoError


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
