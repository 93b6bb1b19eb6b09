"""Figures for notebook 01: frame grids of edited samples (the dark span marked, frames framed by their source), the
task mix and duration distributions, and an interactive sample browser. Kept here so the notebook stays short."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vvkit.schema import Row

SOURCE_COLOURS = ("tab:blue", "tab:orange")
DARK_COLOUR = "black"


def _read(row: Row, frames: dict | None):
    from vvkit.video import FramePolicy, read_video

    return read_video(row.video, FramePolicy.from_dict(frames or {}), edits=row.edits)


def frame_grid(frames: np.ndarray, timestamps: np.ndarray, ncols: int = 8, border: list[str | None] | None = None,
               title: str = "", timeline: bool = False):
    """Frames in a grid, each titled with its time; `border[i]` colours frame i's frame (None = no frame). With
    `timeline`, a thin axis is added below the grid and returned as well: (fig, timeline_ax or None)."""
    import matplotlib.pyplot as plt

    n = len(frames)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = plt.figure(figsize=(1.5 * ncols, 1.6 * nrows + (0.9 if timeline else 0.3)))
    gs = fig.add_gridspec(nrows + int(timeline), ncols, height_ratios=[1] * nrows + ([0.45] if timeline else []))
    for i in range(n):
        ax = fig.add_subplot(gs[i // ncols, i % ncols])
        ax.imshow(frames[i])
        ax.set_title(f"{timestamps[i]:.1f}s", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        colour = border[i] if border else None
        for sp in ax.spines.values():
            sp.set_visible(colour is not None)
            if colour is not None:
                sp.set_edgecolor(colour)
                sp.set_linewidth(3)
    if title:
        fig.suptitle(title, fontsize=9)
    tl = None
    if timeline:
        tl = fig.add_subplot(gs[nrows, :])
        tl.set_yticks([])
        tl.set_xlabel("seconds (edited timeline)", fontsize=8)
    return fig, tl


def plot_dark_event(row: Row, frames: dict | None = None, ncols: int = 8):
    """A DarkEventInfer sample: sampled frames (the blacked-out ones framed in red) and the clip timeline with the
    dark span, plus the hidden event as the title."""
    clip = _read(row, frames)
    spans = row.edits["mask"]
    inside = [any(s <= t < e for s, e in spans) for t in clip.timestamps]
    fig, ax = frame_grid(clip.frames, clip.timestamps, ncols, ["red" if x else None for x in inside],
                         title=f"hidden: {row.solution}", timeline=True)
    duration = row.meta.get("duration", clip.duration)
    ax.barh(0, duration, color="lightgrey")
    for s, e in spans:
        ax.barh(0, e - s, left=s, color=DARK_COLOUR, label="dark span")
    ax.plot(clip.timestamps, np.zeros(len(clip.timestamps)), "|", color="red", ms=14, label="sampled frames")
    ax.set_xlim(0, duration)
    ax.legend(fontsize=7, loc="upper right", ncol=2, framealpha=0.9)
    fig.tight_layout()
    return fig


def source_bar(ax, chunks: list[list], asked: int | None = None) -> None:
    """The interleaved timeline as a bar coloured by source; the asked source is hatched."""
    t = 0.0
    for src, s, e in chunks:
        ax.barh(0, e - s, left=t, color=SOURCE_COLOURS[int(src)], edgecolor="white",
                hatch="//" if asked == int(src) else None)
        ax.text(t + (e - s) / 2, 0, "AB"[int(src)], ha="center", va="center", fontsize=8, color="white")
        t += e - s
    ax.set_xlim(0, t)


def plot_mixvid(row: Row, frames: dict | None = None, ncols: int = 8):
    """A MixVidQA sample: sampled frames framed by their source colour, the source bar, the question and answer."""
    clip = _read(row, frames)
    src = clip.sources if clip.sources is not None else np.zeros(len(clip.frames), int)
    asked = row.meta.get("asked_source")
    fig, ax = frame_grid(clip.frames, clip.timestamps, ncols, [SOURCE_COLOURS[int(s)] for s in src],
                         title=f"{row.meta.get('question', '')}  asked: {'AB'[asked]} "
                               f"(shown {row.meta.get('asked_order')}) -> {row.solution}", timeline=True)
    source_bar(ax, row.edits["interleave"], asked)
    ax.plot(clip.timestamps, np.zeros(len(clip.timestamps)), "|", color="black", ms=14)
    fig.tight_layout()
    return fig


def plot_task_mix(summary: dict):
    """Rows per task, one bar group per split."""
    import matplotlib.pyplot as plt

    counts = summary["counts"]
    tasks = sorted({t for c in counts.values() for t in c})
    fig, ax = plt.subplots(figsize=(6, 3))
    w = 0.8 / max(1, len(counts))
    for j, (split, c) in enumerate(counts.items()):
        ax.bar(np.arange(len(tasks)) + j * w, [c.get(t, 0) for t in tasks], w, label=split)
    ax.set_xticks(np.arange(len(tasks)) + w * (len(counts) - 1) / 2, tasks)
    ax.set_ylabel("rows")
    ax.set_title("task mix")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_durations(data_dir: str | os.PathLike, rows: list[Row]):
    """Histograms: source video length, event length, dark-span length, interleaved (MixVidQA) length."""
    import matplotlib.pyplot as plt

    videos = [json.loads(line) for line in (Path(data_dir) / "videos.jsonl").read_text().splitlines() if line]
    series = {
        "source videos (s)": [v["duration"] for v in videos],
        "events (s)": [e["end"] - e["start"] for v in videos for e in v["events"]],
        "dark spans (s)": [r.edits["mask"][0][1] - r.edits["mask"][0][0] for r in rows if r.problem_type == "dark_event"],
        "mixed videos (s)": [r.meta["duration"] for r in rows if r.problem_type == "mixvid"],
    }
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.6))
    for ax, (name, vals) in zip(axes, series.items()):
        if vals:
            ax.hist(vals, bins=20, color="tab:grey")
        ax.set_title(f"{name}, n={len(vals)}", fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig, run_dir: str | os.PathLike, name: str) -> Path:
    """Save into `<run_dir>/figures/<name>.png` (figures are shown and kept with the run)."""
    path = Path(run_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def sample_browser(rows: list[Row], frames: dict | None = None) -> Any:
    """An ipywidgets browser: pick a row, see its prompt, answer and frames (interactive sessions only)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from vvkit.prompts import build_prompt

    out = W.Output()
    pick = W.IntSlider(0, 0, max(0, len(rows) - 1), description="row")

    def show(change: Any = None) -> None:
        row = rows[pick.value]
        with out:
            out.clear_output(wait=True)
            print(f"{row.id}  [{row.problem_type}, {row.split}]\n{build_prompt(row)}\n-> {row.solution}")
            if row.problem_type == "dark_event":
                plot_dark_event(row, frames)
            elif row.problem_type == "mixvid":
                plot_mixvid(row, frames)
            else:
                clip = _read(row, frames)
                frame_grid(clip.frames, clip.timestamps)
            plt.show()

    pick.observe(show, names="value")
    show()
    return W.VBox([pick, out])
