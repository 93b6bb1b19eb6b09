"""Rendering of toy-world scripts to frames (numpy only, fast): a static background, then each shape's mask at its
interpolated state, the shapes of the current event drawn last so they are never hidden."""
from __future__ import annotations

import math

import numpy as np

from vvkit.synth.toyworld import COLOURS, ToyVideo, radius, state_at


def _texture(video: ToyVideo) -> np.ndarray:
    """A static background: the plain colour, plus faint diagonal stripes when `texture` is on."""
    W = video.size
    bg = np.empty((W, W, 3), np.float32)
    bg[:] = video.background
    if video.texture:
        yy, xx = np.mgrid[0:W, 0:W]
        bg += (((xx + yy) // 8) % 2 * 10.0 - 5.0)[..., None]
    return bg.clip(0, 255).astype(np.uint8)


def shape_mask(kind: str, dx: np.ndarray, dy: np.ndarray, size: float, angle: float) -> np.ndarray:
    """Boolean mask of a shape from pixel offsets to its centre; rotation by `angle` radians."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = dx * c + dy * s, -dx * s + dy * c
    if kind == "circle":
        return dx * dx + dy * dy <= size * size
    if kind == "square":
        return (np.abs(u) <= size) & (np.abs(v) <= size)
    if kind == "cross":
        a, b = np.abs(u), np.abs(v)
        return ((a <= size) & (b <= size / 3)) | ((a <= size / 3) & (b <= size))
    if kind == "triangle":  # equilateral, apex up at angle 0: three half-planes at the inradius size/2
        h = size / 2
        return (v <= h) & (0.866 * u - 0.5 * v <= h) & (-0.866 * u - 0.5 * v <= h)
    raise ValueError(f"unknown shape {kind!r}")


def active_shapes(video: ToyVideo, t: float) -> list[int]:
    """Actors of the event under way at t (or the last one finished): they are drawn on top, never hidden."""
    last: list[int] = []
    for e in video.events:
        if e.start <= t:
            last = e.actors
    return last


def render_frame(video: ToyVideo, t: float, bg: np.ndarray | None = None) -> np.ndarray:
    """One (H, W, 3) uint8 frame at time t."""
    W = video.size
    frame = (_texture(video) if bg is None else bg).copy()
    top = active_shapes(video, t)
    order = [i for i in range(len(video.kinds)) if i not in top] + top
    for i in order:
        k = state_at(video.keys[i], t)
        if k is None:
            continue
        r = radius(video.kinds[i], k.size) + 1
        x0, x1 = max(0, int(k.x - r)), min(W, int(k.x + r) + 2)
        y0, y1 = max(0, int(k.y - r)), min(W, int(k.y + r) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        m = shape_mask(video.kinds[i], xx + 0.5 - k.x, yy + 0.5 - k.y, k.size, k.angle)
        frame[y0:y1, x0:x1][m] = COLOURS[k.colour]
    return frame


def render(video: ToyVideo) -> np.ndarray:
    """All frames, (T, H, W, 3) uint8, frame i at time i / fps."""
    bg = _texture(video)
    return np.stack([render_frame(video, i / video.fps, bg) for i in range(video.num_frames)])
