"""Frame figures: grids of sampled frames (the dark span marked, frames framed by their source clip), the task mix and
duration charts of notebook 01, and the answer gallery of notebook 04 (a held-out answer drawn over the frames it was
given). Every figure is as wide as JupyterLab's output area; `save` writes one to the path `RunDir.figure` names."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vvkit.schema import Row

SOURCE_COLOURS = ("tab:blue", "tab:orange")
DARK_COLOUR = "black"
WIDTH = 8.4  # inches: at the inline backend's 100 dpi a figure this wide fills JupyterLab's output area unscaled
FONT = 10  # points; nothing smaller is drawn (about 14 px at 100 dpi)


def _read(row: Row, frames: dict | None):
    from vvkit.video import FramePolicy, read_video

    return read_video(row.video, FramePolicy.from_dict(frames or {}), edits=row.edits)


def frame_grid(frames: np.ndarray, timestamps: np.ndarray, ncols: int = 8, border: list[str | None] | None = None,
               title: str = "", timeline: bool = False):
    """Frames in a grid as wide as the notebook, each titled with its time; `border[i]` colours frame i's frame
    (None = no frame). With `timeline`, an axis is added below the grid and returned too: (fig, timeline_ax or None)."""
    import matplotlib.pyplot as plt

    n = len(frames)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    cell = min(WIDTH / ncols, 1.8)  # a few frames stay frame-sized instead of filling the width
    head = 0.4 + 0.2 * title.count("\n")
    ratios = [cell + 0.3] * nrows + ([0.5] if timeline else [])
    fig = plt.figure(figsize=(WIDTH, sum(ratios) + (1.0 if timeline else 0.1) + head))
    gs = fig.add_gridspec(len(ratios), ncols, height_ratios=ratios)
    for i in range(n):
        ax = fig.add_subplot(gs[i // ncols, i % ncols])
        ax.imshow(frames[i])
        ax.set_title(f"{timestamps[i]:.1f} s", fontsize=FONT)
        ax.set_xticks([])
        ax.set_yticks([])
        colour = border[i] if border else None
        for sp in ax.spines.values():
            sp.set_visible(colour is not None)
            if colour is not None:
                sp.set_edgecolor(colour)
                sp.set_linewidth(3)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    tl = None
    if timeline:
        tl = fig.add_subplot(gs[nrows, :])
        tl.set_yticks([])
        tl.tick_params(labelsize=FONT)
        tl.set_xlabel("seconds (edited timeline, as the model sees it)", fontsize=FONT)
    return fig, tl


def plot_dark_event(row: Row, frames: dict | None = None, ncols: int = 8):
    """A DarkEventInfer sample: sampled frames (the blacked-out ones framed in red) and the clip timeline with the
    dark span, plus the hidden event as the title."""
    clip = _read(row, frames)
    spans = row.edits["mask"]
    inside = [any(s <= t < e for s, e in spans) for t in clip.timestamps]
    title = wrap_text(f"DarkEventInfer: the sampled frames (red frame = inside the dark span). "
                      f"Hidden event: {row.solution}", 90)
    fig, ax = frame_grid(clip.frames, clip.timestamps, ncols, ["red" if x else None for x in inside],
                         title=title, timeline=True)
    duration = row.meta.get("duration", clip.duration)
    ax.barh(0, duration, color="lightgrey", label="visible video")
    for k, (s, e) in enumerate(spans):
        ax.barh(0, e - s, left=s, color=DARK_COLOUR, label=None if k else "dark span")
    ax.plot(clip.timestamps, np.zeros(len(clip.timestamps)), "|", color="red", ms=18, mew=2, label="sampled frames")
    ax.set_xlim(0, duration)
    ax.legend(fontsize=FONT - 1, loc="upper center", bbox_to_anchor=(0.5, -1.1), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def source_bar(ax, chunks: list[list], asked: int | None = None) -> None:
    """The interleaved timeline as a bar coloured by source, each chunk labelled A or B; the asked source is
    hatched; a legend names the colours."""
    from matplotlib.patches import Patch

    t = 0.0
    for src, s, e in chunks:
        ax.barh(0, e - s, left=t, color=SOURCE_COLOURS[int(src)], edgecolor="white",
                hatch="//" if asked == int(src) else None)
        ax.text(t + (e - s) / 2, 0, "AB"[int(src)], ha="center", va="center", fontsize=FONT + 2, color="white",
                fontweight="bold", bbox={"boxstyle": "round,pad=0.15", "fc": SOURCE_COLOURS[int(src)], "ec": "none"})
        t += e - s
    ax.set_xlim(0, t)
    handles = [Patch(color=SOURCE_COLOURS[k], label=f"clip {'AB'[k]} chunks") for k in (0, 1)]
    if asked is not None:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label=f"asked: clip {'AB'[asked]}"))
    ax.legend(handles=handles, fontsize=FONT - 1, loc="upper center", bbox_to_anchor=(0.5, -1.1), ncol=3,
              frameon=False)


def plot_mixvid(row: Row, frames: dict | None = None, ncols: int = 8):
    """A MixVidQA sample: sampled frames framed by their source colour, the source bar, the question and answer."""
    clip = _read(row, frames)
    src = clip.sources if clip.sources is not None else np.zeros(len(clip.frames), int)
    asked = row.meta.get("asked_source")
    title = wrap_text(f"MixVidQA: frames framed by their clip (blue = A, orange = B). Asked about clip "
                      f"{'AB'[asked]} (the one shown {row.meta.get('asked_order')}): "
                      f"{row.meta.get('question', '')} -> {row.solution}", 90)
    fig, ax = frame_grid(clip.frames, clip.timestamps, ncols, [SOURCE_COLOURS[int(s)] for s in src],
                         title=title, timeline=True)
    ax.plot(clip.timestamps, np.zeros(len(clip.timestamps)), "|", color="black", ms=18, mew=2)
    source_bar(ax, row.edits["interleave"], asked)
    fig.tight_layout()
    return fig


def plot_task_mix(summary: dict):
    """Rows per task, one bar group per split."""
    import matplotlib.pyplot as plt

    counts = summary["counts"]
    tasks = sorted({t for c in counts.values() for t in c})
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 3.2))
    w = 0.8 / max(1, len(counts))
    for j, (split, c) in enumerate(counts.items()):
        bars = ax.bar(np.arange(len(tasks)) + j * w, [c.get(t, 0) for t in tasks], w, label=split)
        ax.bar_label(bars, fontsize=FONT - 1)
    ax.set_xticks(np.arange(len(tasks)) + w * (len(counts) - 1) / 2, tasks, fontsize=FONT)
    ax.set_ylabel("rows", fontsize=FONT)
    ax.set_title("Task mix: rows per task in each split", fontsize=FONT + 1)
    ax.margins(y=0.15)
    ax.legend(title="split", fontsize=FONT - 1)
    fig.tight_layout()
    return fig


def plot_durations(data_dir: str | os.PathLike, rows: list[Row]):
    """Histograms: source video length, event length, dark-span length, interleaved (MixVidQA) length."""
    import matplotlib.pyplot as plt

    videos = [json.loads(line) for line in (Path(data_dir) / "videos.jsonl").read_text().splitlines() if line]
    series = {
        "source videos (s)": [v["duration"] for v in videos],
        "events (s)": [e["end"] - e["start"] for v in videos for e in v["events"]],
        "dark spans (s)": [r.edits["mask"][0][1] - r.edits["mask"][0][0] for r in rows
                           if r.problem_type == "dark_event"],
        "mixed videos (s)": [r.meta["duration"] for r in rows if r.problem_type == "mixvid"],
    }
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 5.2))
    for ax, (name, vals) in zip(axes.flat, series.items()):
        if vals:
            ax.hist(vals, bins=min(20, max(5, len(vals))), color="tab:grey")
        else:
            ax.text(0.5, 0.5, "none in this task mix", ha="center", va="center", transform=ax.transAxes,
                    color="grey", fontsize=FONT)
        ax.set_title(f"{name.replace(' (s)', '')}, n={len(vals)}", fontsize=FONT)
        ax.set_xlabel("seconds", fontsize=FONT - 1)
        ax.set_ylabel("count", fontsize=FONT - 1)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=FONT - 1)
    fig.suptitle("Durations: source videos, their events, dark spans and interleaved MixVidQA videos",
                 fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def wrap_text(text: str, width: int = 100) -> str:
    """Hard-wrap every line at word boundaries (JupyterLab breaks long output lines mid-word)."""
    return "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) or line
                     for line in text.splitlines())


def describe(row: Row) -> str:
    """A short label of what a row's answer is about: its question family, or the hidden event, or its events."""
    meta = row.meta
    if meta.get("family"):
        return str(meta["family"])
    if row.problem_type == "dark_event" and "event_index" in meta:
        return f"hidden event {meta['event_index'] + 1} of {meta.get('num_events', '?')}: {meta.get('kind', '?')}"
    if "num_events" in meta:
        return f"{meta['num_events']} events"
    return str(meta.get("video_id", row.id))


def example_prompts(rows: list[Row], width: int = 100) -> str:
    """One row of each task (the last of each in `rows`) as the policy sees it, with its solution."""
    from vvkit.prompts import build_prompt

    examples = {r.problem_type: r for r in reversed(rows)}
    return "\n\n".join(f"--- {task} ({describe(r)})\n{wrap_text(build_prompt(r), width)}\n=> {r.solution}"
                       for task, r in examples.items())


def save(fig: Any, path: str | os.PathLike) -> Path:
    """Write `fig` as PNG to `path` (a `RunDir(run_dir).figure(name)` path), making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_row(row: Row, frames: dict | None = None) -> Any:
    """A row's sampled frames drawn the way its task needs: the dark span for DarkEventInfer, the A/B chunk bar for
    MixVidQA, a plain grid of frames otherwise."""
    if row.problem_type == "dark_event":
        return plot_dark_event(row, frames)
    if row.problem_type == "mixvid":
        return plot_mixvid(row, frames)
    clip = _read(row, frames)
    fig, _ = frame_grid(clip.frames, clip.timestamps, title=f"the {len(clip.frames)} sampled frames")
    return fig


# ---- the answer gallery (notebook 04) --------------------------------------------------------------------------

GALLERY_CHARS = 100  # characters per title line: 10 pt text within an 8.4-inch figure
SCORE_SCALE = {"dark_event": "judge, 0-2", "mixvid": "1 = right", "mcq": "1 = right", "open_ended": "judge verdict",
               "caption": "AutoDQ"}


def _short(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def gallery_title(pred: dict, row: Row) -> str:
    """What a gallery figure says: the task and what its frames show, the question, the reference, the policy's
    answer and its score, wrapped to the figure's width."""
    task = row.problem_type
    if task == "dark_event":
        what = "DarkEventInfer (red frame = inside the dark span)"
    elif task == "mixvid":
        asked = row.meta.get("asked_source")
        what = ("MixVidQA (frames framed by clip: blue = A, orange = B"
                + (f"; asked about clip {'AB'[asked]})" if asked is not None else ")"))
    else:
        what = task
    answer = pred.get("answer")
    answer = "(no answer read)" if answer is None or str(answer).strip() == "" else _short(answer)
    score = pred.get("score")
    score = "-" if score is None or (isinstance(score, float) and np.isnan(score)) else f"{float(score):g}"
    scale = SCORE_SCALE.get(task)
    return wrap_text(f"{what} \u00b7 {row.id}\nQuestion: {_short(row.problem)}\nReference: {_short(row.solution)}\n"
                     f"Answer: {answer} \u2192 score {score}" + (f" ({scale})" if scale else ""), GALLERY_CHARS)


def answer_gallery(predictions: list[dict], rows: list[Row], frames: dict,
                   tasks: Sequence[str] = ("dark_event", "mixvid"), per_task: int = 2) -> list[Any]:
    """The first `per_task` predictions of each task drawn with their row's frames (`plot_row`), titled with the
    question, the reference, the policy's answer and its score: what a score is made of. Rows are matched by id; a
    missing one is a KeyError."""
    import matplotlib.pyplot as plt

    by_id = {r.id: r for r in rows}
    figs = []
    for task in tasks:
        for pred in [p for p in predictions if p.get("problem_type") == task][:per_task]:
            if pred["id"] not in by_id:
                raise KeyError(f"prediction {pred['id']!r} ({task}): no row with this id among the {len(rows)} rows "
                               "given (pass the rows that were evaluated)")
            row = by_id[pred["id"]]
            if task in ("dark_event", "mixvid"):
                fig = plot_row(row, frames)
            else:
                clip = _read(row, frames)
                fig, _ = frame_grid(clip.frames, clip.timestamps)
            title = gallery_title(pred, row)
            extra = title.count("\n") - fig.get_suptitle().count("\n")
            width, height = fig.get_size_inches()
            fig.set_size_inches(width, height + 0.17 * max(0, extra))  # room for the longer title
            fig.suptitle(title, fontsize=FONT, ha="left", x=0.02)
            fig.tight_layout()
            plt.close(fig)  # returned to be displayed once, not shown again at the cell's end
            figs.append(fig)
    return figs


def plot_start_curve(manifest: dict) -> Any:
    """The shipped instruct start's learning curve (its manifest's `curve`): each task's held-out score after every
    supervised stage, with the video (solid) and with black frames (dashed). The gap between the two is what the
    start has learned to see; GRPO starts from the last point."""
    import matplotlib.pyplot as plt

    curve = manifest.get("curve") or []
    if not curve:
        raise ValueError("the manifest holds no learning curve (`curve`); rebuild with tools/build_start.py")
    tasks = sorted(curve[-1]["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(WIDTH, 2.8), layout="constrained", squeeze=False)
    steps = [p["steps"] for p in curve]
    for ax, task in zip(axes[0], tasks):
        ax.plot(steps, [p["tasks"][task]["score"] for p in curve], marker="o", ms=3, label="video")
        ax.plot(steps, [p["tasks"][task]["blank"] for p in curve], ls="--", color="grey", label="black frames")
        ax.set_title(task.replace("_", " "), fontsize=FONT)
        ax.set_xlabel("supervised steps", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out score", fontsize=FONT)
    axes[0][0].legend(fontsize=FONT, frameon=False)
    return fig
