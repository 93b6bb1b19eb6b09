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
    """(task, label) x reward DataFrame (NaN where a reward does not apply) plus TRL's weighted `total`."""
    import pandas as pd

    comps = [it["completion"] for it in items]
    cols = columns(items)
    data = {f.__name__: [np.nan if v is None else v for v in f(comps, **cols)] for f in reward_funcs}
    df = pd.DataFrame(data, index=pd.MultiIndex.from_tuples([(it["problem_type"], it["label"]) for it in items],
                                                             names=["task", "completion"]))
    w = np.asarray(weights if weights is not None else [1.0] * len(reward_funcs), dtype=float)
    vals = df[[f.__name__ for f in reward_funcs]].to_numpy(dtype=float)
    df["total"] = np.nansum(vals * w, axis=1)  # TRL: nansum of weighted rewards (None -> NaN is skipped)
    return df


def reward_heatmap(df: Any, title: str = "", path: str | Path | None = None):
    """Heatmap of a reward table (grey = not applicable); saved as PNG when `path` is given."""
    import matplotlib.pyplot as plt

    vals = df.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * vals.shape[1], 0.8 + 0.32 * vals.shape[0]))
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#dddddd")
    finite = vals[np.isfinite(vals)]
    lim = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in np.ndenumerate(vals):
        if math.isfinite(v):
            ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(vals.shape[1]), [str(c) for c in df.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(vals.shape[0]), [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in df.index],
                  fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def gate_table(items: Sequence[dict], judge: Any = None, strict: bool = True):
    """The same completions under the three ways of combining format and task score (paper x, Video-R1 +, none)."""
    import pandas as pd

    from vvkit.rewards.tasks import score_batch

    cols = columns(items)
    recs = score_batch([it["completion"] for it in items], cols["solution"], cols["problem_type"], cols["options"],
                       cols["problem"], judge, strict=strict)
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
