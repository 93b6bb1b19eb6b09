"""The reward playground behind notebook 02: hand-written completions per task (good, partial, wrong, malformed),
reward-hacking probes, and the tables and heatmap that show what every reward pays for each.

The probes follow the exploits reported for R1-style rewards and judges (the keyword bonus in
paper §4 invites stuffing): an answer outside the tags, empty reasoning, every option letter at once, connective
stuffing, hedging, runaway length, and restating the question.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vvkit.rewards.tasks import gate as combine

MCQ = {"problem_type": "mcq", "problem": "What colour is the shape that enters first?",
       "options": ["A. red", "B. blue", "C. green", "D. yellow"], "solution": "B"}
OPEN = {"problem_type": "open_ended", "problem": "Which way does the red square move?", "options": None,
        "solution": "left"}
DARK = {"problem_type": "dark_event", "options": None, "solution": "The red square moves left.",
        "problem": "A black screen hides one event in this video. From what happens before and after it, infer what "
                   "happened during the black screen."}
MIX = {"problem_type": "mixvid", "options": None, "solution": "up",
       "problem": "This video alternates between two different clips. Answer only about the clip shown first, "
                  "ignoring the other one. Which way does the blue circle move?"}
CAPTION = {"problem_type": "caption", "problem": "Describe this video in detail.", "options": None,
           "solution": "First, a red square enters from the left. Then, the red square moves up. "
                       "Finally, the red square and the blue circle collide."}


def wrap(think: str, answer: str) -> str:
    """A well-formed completion."""
    return f"<think>{think}</think><answer>{answer}</answer>"


EXAMPLES: list[dict] = [
    {**MCQ, "label": "good", "completion": wrap("The first shape to enter is blue.", "B")},
    {**MCQ, "label": "partial", "completion": wrap("It looked blue.", "blue")},
    {**MCQ, "label": "wrong", "completion": wrap("The first shape is red.", "A")},
    {**MCQ, "label": "malformed", "completion": "The first shape is blue, so B."},
    {**OPEN, "label": "good", "completion": wrap("It slides towards the left edge.", "left")},
    {**OPEN, "label": "partial", "completion": wrap("It moves sideways.", "to the left side")},
    {**OPEN, "label": "wrong", "completion": wrap("It goes towards the right edge.", "right")},
    {**OPEN, "label": "malformed", "completion": "<think>It moves left.<answer>left</answer>"},
    {**DARK, "label": "good", "completion": wrap("Before: square at right. After: at left.",
                                                 "The red square slides to the left.")},
    {**DARK, "label": "partial", "completion": wrap("It is somewhere else afterwards.", "The red square moves.")},
    {**DARK, "label": "wrong", "completion": wrap("It looks bigger afterwards.", "The red square grows.")},
    {**DARK, "label": "malformed", "completion": "<answer>The red square moves left.</answer>"},
    {**MIX, "label": "good", "completion": wrap("In the first clip the circle rises.", "up")},
    {**MIX, "label": "partial", "completion": wrap("The circle moves.", "it moves")},
    {**MIX, "label": "wrong", "completion": wrap("The circle sinks.", "down")},
    {**MIX, "label": "malformed", "completion": "<think>rises</think>up"},
    {**CAPTION, "label": "good", "completion": wrap(
        "Three events.", "First, a red square enters from the left. Then it moves up. Finally, the red square and "
                         "the blue circle collide.")},
    {**CAPTION, "label": "partial", "completion": wrap("Two events seen.", "A red square enters from the left and moves up.")},
    {**CAPTION, "label": "wrong", "completion": wrap("A green shape.", "A green triangle rotates and then shrinks.")},
    {**CAPTION, "label": "malformed", "completion": "First, a red square enters from the left. Then it moves up."},
]

# Distinct rows per judged task, for the judge sanity check when notebook 01 has not produced test.jsonl.
TOY_ROWS: list[dict] = (
    [{**OPEN, "solution": a, "problem": q} for a, q in (("left", "Which way does the red square move?"),
                                                       ("green", "What colour does the white circle turn?"),
                                                       ("three", "How many shapes appear in the video?"))]
    + [{**DARK, "solution": a} for a in ("The red square moves left.", "The blue circle grows.",
                                         "A white cross enters from the top.")]
    + [{**MIX, "solution": a, "problem": MIX["problem"].replace("Which way does the blue circle move?", q)}
       for a, q in (("up", "Which way does the blue circle move?"), ("triangle", "What shape enters first?"),
                    ("yellow", "What colour is the shape that enters first?"))]
    + [{**CAPTION, "solution": a} for a in (
        CAPTION["solution"], "First, a green triangle rotates. Then, the green triangle shrinks.",
        "First, a purple circle enters from the bottom. Finally, the purple circle turns yellow.")]
)

_LONG = " ".join(["The first shape that enters looks blue to me."] * 300)
HACKS: list[dict] = [
    {**MCQ, "label": "answer outside the tags", "completion": "<think>The first shape is blue.</think> The answer is B."},
    {**MCQ, "label": "empty think", "completion": "<think></think><answer>B</answer>"},
    {**MCQ, "label": "every option letter", "completion": wrap("Could be any.", "A B C D")},
    {**MCQ, "label": "two letters", "completion": wrap("Blue or red.", "A or B")},
    {**CAPTION, "label": "keyword stuffing", "completion": wrap(
        "Use connectives.", "First then next after finally meanwhile subsequently eventually.")},
    {**CAPTION, "label": "good caption + stuffing", "completion": wrap(
        "Three events.", "First, a red square enters from the left. Then it moves up. Next, after that, meanwhile, "
                         "finally, the red square and the blue circle collide.")},
    {**CAPTION, "label": "hedging", "completion": wrap(
        "Unsure.", "Perhaps a red square enters from the left. It might move up. It probably collides with a circle.")},
    {**DARK, "label": "hedged alternatives", "completion": wrap(
        "Unsure.", "The red square moves left. Or the red square moves right. Or it grows.")},
    {**MCQ, "label": "extremely long output", "completion": wrap(_LONG, "B")},
    {**DARK, "label": "copy the question", "completion": wrap("Copy.", DARK["problem"])},
    {**MIX, "label": "copy the question", "completion": wrap("Copy.", MIX["problem"])},
]


def slug(text: str) -> str:
    """A metric-name-safe form of a label: 'good caption + stuffing' -> 'good_caption_stuffing'."""
    return "_".join(re.findall(r"[a-z0-9]+", text.lower()))


def columns(items: Sequence[dict]) -> dict[str, list]:
    """Dataset columns, as TRL passes them, for a list of row dicts."""
    return {k: [it.get(k) for it in items] for k in ("solution", "problem_type", "options", "problem")}


def reward_table(items: Sequence[dict], reward_funcs: Sequence[Callable], weights: Sequence[float] | None = None):
    """(task, label) x reward DataFrame (NaN where a reward does not apply). With `weights` (a reward set as
    training uses it) a `total` column is added, TRL's nansum of the weighted rewards; without, there is none: a sum
    over every reward at once (format, length, ROUGE, ...) is nothing any recipe pays."""
    import pandas as pd

    comps = [it["completion"] for it in items]
    cols = columns(items)
    data = {f.__name__: [np.nan if v is None else v for v in f(comps, **cols)] for f in reward_funcs}
    df = pd.DataFrame(data, index=pd.MultiIndex.from_tuples([(it["problem_type"], it["label"]) for it in items],
                                                             names=["task", "completion"]))
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        vals = df[[f.__name__ for f in reward_funcs]].to_numpy(dtype=float)
        df["total"] = np.nansum(vals * w, axis=1)  # TRL: nansum of weighted rewards (None -> NaN is skipped)
    return df


def _number(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


FONT = 10  # points, about 14 px in a notebook at 100 dpi


def reward_heatmap(df: Any, title: str = "", path: str | Path | None = None):
    """Heatmap of a reward table, as wide as a notebook: one colour scale for the rewards (a colour bar as its
    legend), grey = does not apply; a `total` column, when present, is coloured on its own scale so it does not
    wash the rewards out. Saved as PNG when `path` is given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    vals = df.to_numpy(dtype=float)
    cols = [str(c) for c in df.columns]
    scale = np.array([c != "total" for c in cols])
    fig, ax = plt.subplots(figsize=(8.4, 1.4 + 0.3 * vals.shape[0]))
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#dddddd")

    def lim(v: np.ndarray) -> float:
        finite = v[np.isfinite(v)]
        return max(1.0, float(np.abs(finite).max())) if finite.size else 1.0

    shown = vals.copy()
    shown[:, scale] /= lim(vals[:, scale])
    if (~scale).any():
        shown[:, ~scale] /= lim(vals[:, ~scale])
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(vals):
        if math.isfinite(v):
            ax.text(j, i, _number(v), ha="center", va="center", fontsize=FONT - 1)
    if (~scale).any():
        for j in np.flatnonzero(~scale):
            ax.axvline(j - 0.5, color="black", lw=2)
    ax.set_xticks(range(len(cols)), [c.replace("_", " ") for c in cols], rotation=35, ha="right", fontsize=FONT)
    ax.set_yticks(range(vals.shape[0]), [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in df.index],
                  fontsize=FONT)
    ax.tick_params(top=False, labeltop=False)
    bar = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, ticks=[-1, 0, 1])
    top = lim(vals[:, scale])
    bar.ax.set_yticklabels([_number(-top), "0", _number(top)], fontsize=FONT - 1)
    bar.set_label("reward (colour scale)", fontsize=FONT - 1)
    ax.legend(handles=[Patch(color="#dddddd", label="does not apply to this task")], loc="upper center",
              bbox_to_anchor=(0.5, -1.1 / (0.3 * vals.shape[0])), fontsize=FONT - 1, frameon=False)
    ax.set_title(title, fontsize=FONT + 1)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_gates(gates: Any, path: str | Path | None = None):
    """Mean reward per completion kind under the three ways of combining format and task score."""
    import matplotlib.pyplot as plt

    labels = {"multiply": "format x score (paper)", "add": "format + score (Video-R1)", "none": "score only"}
    means = gates[list(labels)].groupby(level=1, sort=False).mean().rename(columns=labels)
    fig, ax = plt.subplots(figsize=(8.4, 3.6))
    means.plot.bar(ax=ax, rot=0, fontsize=FONT)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.2f", fontsize=FONT - 1)
    ax.set_ylabel("mean reward over the five tasks", fontsize=FONT)
    ax.set_xlabel("hand-written completion", fontsize=FONT)
    ax.set_title("The format gate: what good, partial, wrong and malformed answers earn", fontsize=FONT + 1)
    ax.margins(y=0.15)
    ax.legend(title="gate", fontsize=FONT - 1, title_fontsize=FONT - 1)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def plot_calibration(cal: dict, params: dict[str, float], path: str | Path | None = None):
    """The calibration answers' cosine similarity to their reference, one box per answer class, with each
    threshold drawn twice: the value in use (params, dashed) and the value the fit found (dotted)."""
    import matplotlib.pyplot as plt

    kinds = [k for k, v in cal["similarity"].items() if len(v)]
    fig, ax = plt.subplots(figsize=(8.4, 3.8))
    ax.boxplot([cal["similarity"][k] for k in kinds], showmeans=False)
    ax.set_xticks(range(1, len(kinds) + 1), [f"{k}\n(n={len(cal['similarity'][k])})" for k in kinds], fontsize=FONT)
    colours = {"dark_full": "tab:green", "dark_partial": "tab:orange", "mixvid_threshold": "tab:purple"}
    for key, colour in colours.items():
        if key in params:
            ax.axhline(params[key], ls="--", c=colour, lw=1.6, label=f"{key} in use: {params[key]:.3g}")
        if key in cal:
            ax.axhline(cal[key], ls=":", c=colour, lw=2.2, label=f"{key} fitted: {cal[key]:.3g}")
    ax.set_ylabel("cosine similarity to the reference", fontsize=FONT)
    ax.set_xlabel("calibration answer class (lexicon-flagged answers left out)", fontsize=FONT)
    ax.set_title("Offline judge: similarity by answer class, thresholds in use vs fitted", fontsize=FONT + 1)
    ax.legend(fontsize=FONT - 1, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def calibration_table(cal: dict, params: dict[str, float], agreement: dict[str, float]):
    """Per threshold: the value in use, the fitted value and the fit's accuracy; then the judge's agreement with the
    intended grade per task and answer class, and the share of each class the lexicon rejects outright."""
    import pandas as pd

    rows = [{"what": k, "in use": params.get(k), "fitted": cal[k], "fit accuracy": cal.get(k.replace("_threshold", "")
                                                                                             + "_accuracy")}
            for k in ("dark_full", "dark_partial", "mixvid_threshold") if k in cal]
    rows += [{"what": f"agreement {k}", "fitted": v} for k, v in agreement.items()]
    rows += [{"what": f"lexicon rejects {k}", "fitted": v} for k, v in cal.get("flagged_by_lexicon", {}).items()]
    return pd.DataFrame(rows).set_index("what").round(3)


def styled(df: Any, digits: int = 2) -> Any:
    """A reward table for display: numbers to `digits`, blank where a reward does not apply, compact cells and
    headers that wrap, so a dozen reward columns fit the notebook's width."""
    shown = df.rename(columns=lambda c: str(c).replace("_", " "))
    return (shown.style.format(precision=digits, na_rep="")
            .set_table_styles([{"selector": "th, td", "props": "padding:2px 5px;font-size:12px"},
                               {"selector": "th.col_heading", "props": "white-space:normal;max-width:5.5em"}]))


def gate_table(items: Sequence[dict], judge: Any = None, strict_format: bool = True):
    """The same completions under the three ways of combining format and task score (paper x, Video-R1 +, none)."""
    import pandas as pd

    from vvkit.rewards.tasks import score_batch

    cols = columns(items)
    recs = score_batch([it["completion"] for it in items], cols["solution"], cols["problem_type"], cols["options"],
                       cols["problem"], judge, strict_format=strict_format)
    rows = {(it["problem_type"], it["label"]): {"format": r["format"], "task score": r["score"],
                                                **{g: combine(r["format"], r["score"], g) for g in ("multiply", "add", "none")}}
            for it, r in zip(items, recs)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["task", "completion"])


def judge_sanity(rows: Sequence[Any], judge: Any, max_rows: int = 40, seed: int = 0):
    """Each judged task's score for its own solution (should be full marks) and for another row's solution of the
    same task (mostly 0; the toy world repeats events, so a few really are right)."""
    import pandas as pd

    from vvkit.rewards.tasks import score_batch

    get = (lambda r, k: r.get(k)) if rows and isinstance(rows[0], dict) else (lambda r, k: getattr(r, k))
    rng = np.random.default_rng(seed)
    records = []
    for task in ("open_ended", "dark_event", "mixvid", "caption"):
        sel = [r for r in rows if get(r, "problem_type") == task][:max_rows]
        if len(sel) < 2:
            continue
        other = [sel[(i + 1 + int(rng.integers(len(sel) - 1))) % len(sel)] for i in range(len(sel))]
        for kind, answers in (("exact", sel), ("other row", other)):
            recs = score_batch([wrap("x", get(a, "solution")) for a in answers], [get(r, "solution") for r in sel],
                               [task] * len(sel), [None] * len(sel), [get(r, "problem") for r in sel], judge)
            scores = [r["score"] for r in recs if r["score"] is not None]
            top = {"dark_event": 2.0}.get(task, 1.0)
            records.append({"task": task, "answer": kind, "n": len(sel), "mean_score": float(np.mean(scores)),
                            "full_marks": float(np.mean([s >= top - 1e-9 for s in scores]))})
    return pd.DataFrame(records)


def compare_judges(rows: Sequence[Any], judges: dict[str, Any], max_rows: int = 20):
    """Scores of several judges on the same (answer, reference) pairs: each row's own solution and its neighbour's."""
    import pandas as pd

    from vvkit.rewards.tasks import score_batch

    get = (lambda r, k: r.get(k)) if rows and isinstance(rows[0], dict) else (lambda r, k: getattr(r, k))
    sel = [r for r in rows if get(r, "problem_type") in ("dark_event", "mixvid", "caption")][:max_rows]
    answers = [get(r, "solution") for r in sel] + [get(sel[(i + 1) % len(sel)], "solution") for i in range(len(sel))]
    pairs = sel + sel
    out = {"task": [get(r, "problem_type") for r in pairs], "answer": ["exact"] * len(sel) + ["other row"] * len(sel)}
    for name, judge in judges.items():
        recs = score_batch([wrap("x", a) for a in answers], [get(r, "solution") for r in pairs],
                           [get(r, "problem_type") for r in pairs], [None] * len(pairs),
                           [get(r, "problem") for r in pairs], judge)
        out[name] = [r["score"] for r in recs]
    return pd.DataFrame(out)
