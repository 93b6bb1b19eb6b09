"""Read a run folder back and explain it: training curves, before/after tables, the grounding chart, a completions
viewer and `report.md` (cleanrl's docs pair every run with its curves and a table of the numbers measured).

Inputs are the files the other stages write: `train/<stage>/metrics.jsonl` and `completions.jsonl`
(vvkit.callbacks / vvkit.grpo_trainer: TRL's GRPO metrics plus `reward/<task>`, `format_rate[/<task>]`),
`eval/<policy>/<condition>/results.json` (vvkit.evaluate) and `metrics/NN_name.json` (vvkit.run.record_metrics).
"""
from __future__ import annotations

import html
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from vvkit.schema import HEADLINE_METRIC, TASKS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from vvkit.schema import Row

FIG_PREFIX = "04_"  # figures of this notebook in <run_dir>/figures/


# ---- loading --------------------------------------------------------------------------------------------------

@dataclass
class RunLogs:
    """Everything a finished (or running) run folder holds, as tables."""

    run_dir: Path
    train: dict[str, pd.DataFrame] = field(default_factory=dict)  # stage -> one row per logged train step
    completions: dict[str, list[dict]] = field(default_factory=dict)  # stage -> completions.jsonl records
    evals: dict[str, dict[str, dict]] = field(default_factory=dict)  # policy -> condition/benchmark -> results.json
    metrics: dict[str, dict] = field(default_factory=dict)  # notebook -> recorded headline numbers

    def stage(self, name: str) -> pd.DataFrame:
        """The per-step log of one training stage, or an error saying which notebook writes it."""
        if name not in self.train:
            raise FileNotFoundError(f"{self.run_dir / 'train' / name / 'metrics.jsonl'}: no training log for stage "
                                    f"{name!r} (notebook 03 writes it); stages found: {sorted(self.train)}")
        return self.train[name]


def training_frame(records: Sequence[dict]) -> pd.DataFrame:
    """Train-step log records as a DataFrame indexed by step: TRL's eval records (`eval_*`), the periodic
    evaluation hook (`eval/*`) and the end-of-training summary (`train_runtime`) are left out; a step logged twice
    (a resumed run) keeps its last record."""
    rows = [r for r in records if "step" in r and "train_runtime" not in r
            and not any(k.startswith(("eval_", "eval/")) for k in r)]
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="step"))
    df = pd.DataFrame(rows).drop_duplicates("step", keep="last").set_index("step").sort_index()
    return df.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")


def load_run(run_dir: str | os.PathLike) -> RunLogs:
    """Training logs of every stage under train/, evaluation results under eval/, recorded metrics."""
    from vvkit.io import read_jsonl
    from vvkit.rundir import read_metrics

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder (runs are made by `vvkit run` or the notebooks)")
    logs = RunLogs(run_dir, metrics=read_metrics(run_dir))
    for stage in sorted(p for p in (run_dir / "train").glob("*") if p.is_dir()):
        if (stage / "metrics.jsonl").is_file():
            logs.train[stage.name] = training_frame(read_jsonl(stage / "metrics.jsonl"))
        if (stage / "completions.jsonl").is_file():
            logs.completions[stage.name] = read_jsonl(stage / "completions.jsonl")
    for res in sorted((run_dir / "eval").glob("*/**/results.json")):
        rel = res.parent.relative_to(run_dir / "eval")
        data = json.loads(res.read_text())
        if "metrics" in data:  # finished evaluations only
            logs.evals.setdefault(rel.parts[0], {})["/".join(rel.parts[1:])] = data
    return logs


# ---- training curves ------------------------------------------------------------------------------------------

def _columns(df: pd.DataFrame, prefix: str) -> list[str]:
    return sorted(c for c in df.columns if c.startswith(prefix) and c.count("/") == prefix.count("/"))


def _save(fig: Any, path: Path | None) -> Any:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def smooth(values: pd.Series, window: int | None = None) -> pd.Series:
    """A centred rolling mean (window ~ 5% of the steps, at least 1): per-step GRPO rewards are noisy."""
    window = window or max(1, len(values) // 20)
    return values.rolling(window, min_periods=1, center=True).mean()


def _panel(ax: Any, df: pd.DataFrame, cols: Sequence[str], title: str, ylabel: str, labels: dict | None = None) -> None:
    """One curve per column, smoothed over a faint raw trace; the all-tasks curve (no '/') is drawn last, black."""
    for c in sorted(cols, key=lambda c: "/" not in c):
        overall = "/" not in c and len(cols) > 1
        kw = {"color": "black", "lw": 2.2, "zorder": 5} if overall else {"lw": 1.4}
        line, = ax.plot(df.index, smooth(df[c]), label=(labels or {}).get(c, c), **kw)
        if len(df) >= 30:
            ax.plot(df.index, df[c], color=line.get_color(), alpha=0.15, lw=0.8)
    if not cols:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set(title=title + (" (smoothed)" if len(df) >= 30 and cols else ""), xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(cols) > 1:
        ax.legend(fontsize=9)


def plot_training(df: pd.DataFrame, fig_dir: str | os.PathLike | None = None, stage: str = "grpo",
                  prefix: str = FIG_PREFIX) -> dict[str, Any]:
    """Five figures of a GRPO log: reward per task, format rate, completion length, KL and entropy, and the share of
    groups whose rewards are all equal (no advantage, no gradient); saved as PNG in `fig_dir` when given."""
    import matplotlib.pyplot as plt

    fig_dir = Path(fig_dir) if fig_dir is not None else None
    out = {}

    def path(name: str) -> Path | None:
        return fig_dir / f"{prefix}{stage}_{name}.png" if fig_dir is not None else None

    fig, ax = plt.subplots(figsize=(7, 4))
    tasks = _columns(df, "reward/")
    _panel(ax, df, (["reward"] if "reward" in df else []) + tasks, f"{stage}: reward per task", "mean reward",
           {c: c.split("/", 1)[-1] if "/" in c else "all tasks" for c in ["reward", *tasks]})
    out["reward_per_task"] = _save(fig, path("reward_per_task"))
    fig, ax = plt.subplots(figsize=(7, 4))
    cols = (["format_rate"] if "format_rate" in df else []) + _columns(df, "format_rate/")
    _panel(ax, df, cols, f"{stage}: well-formed <think>/<answer> completions", "format rate",
           {c: c.split("/", 1)[-1] if "/" in c else "all tasks" for c in cols})
    ax.set_ylim(-0.02, 1.02)
    out["format_rate"] = _save(fig, path("format_rate"))
    fig, ax = plt.subplots(figsize=(7, 4))
    _panel(ax, df, [c for c in ("completions/mean_length", "completions/mean_terminated_length") if c in df],
           f"{stage}: completion length", "tokens")
    if {"completions/min_length", "completions/max_length"} <= set(df):
        ax.fill_between(df.index, df["completions/min_length"], df["completions/max_length"], alpha=0.15,
                        label="min-max")
        ax.legend(fontsize=8)
    out["completion_length"] = _save(fig, path("completion_length"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    _panel(axes[0], df, [c for c in ("kl",) if c in df], f"{stage}: KL to the reference", "KL (k3)")
    if "kl" not in df:
        axes[0].text(0.5, 0.35, "(beta = 0: no reference model, as the paper)", ha="center",
                     transform=axes[0].transAxes, color="grey", fontsize=8)
    _panel(axes[1], df, [c for c in ("entropy",) if c in df], f"{stage}: token entropy", "nats")
    out["kl_entropy"] = _save(fig, path("kl_entropy"))
    fig, ax = plt.subplots(figsize=(7, 4))
    _panel(ax, df, [c for c in ("frac_reward_zero_std",) if c in df], f"{stage}: groups with zero reward variance",
           "fraction of groups")
    ax.set_ylim(-0.02, 1.02)
    out["zero_std"] = _save(fig, path("zero_std"))
    for f in out.values():
        plt.close(f)
    return out


# ---- before / after and diagnostics ---------------------------------------------------------------------------

def compare_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """Tasks x policies: each task's headline metric (accuracy, DarkEventInfer mean 0-2, caption F1, ...) and the
    format rate, with the change from the first policy to the last."""
    names = list(metrics)
    tasks = sorted({t for m in metrics.values() for t in m if t != "overall"})
    rows = []
    for t in tasks:
        key = HEADLINE_METRIC.get(t, "primary")
        for metric in (key, "format_rate"):
            rec = {"task": t, "metric": metric}
            rec.update({n: metrics[n].get(t, {}).get(metric, math.nan) for n in names})
            if len(names) > 1:
                rec["change"] = rec[names[-1]] - rec[names[0]]
            rows.append(rec)
    return pd.DataFrame(rows).set_index(["task", "metric"]) if rows else pd.DataFrame()


def plot_diagnostics(table: pd.DataFrame, path: str | os.PathLike | None = None, title: str = "") -> Any:
    """Grouped bars: each task's headline score (0-1) under every condition, with the chance level drawn over its
    group; bars for blank/no_video as tall as the video bar mean the model is not using the video."""
    import matplotlib.pyplot as plt
    import numpy as np

    from vvkit.evaluate import CONDITIONS

    conds = [c for c in CONDITIONS if c in table.columns]
    tasks = list(table.index)
    width = 0.8 / max(1, len(conds))
    fig, ax = plt.subplots(figsize=(8.4, 4.2))  # the notebook's width at 100 dpi: shown unscaled
    colours = dict(zip(CONDITIONS, ("#2b6cb0", "#d69e2e", "#718096", "#c53030")))
    for i, c in enumerate(conds):
        x = np.arange(len(tasks)) - 0.4 + width * (i + 0.5)
        bars = ax.bar(x, table[c].astype(float).fillna(0), width, label=c.replace("_", " "), color=colours[c])
        ax.bar_label(bars, fmt="%.2f", fontsize=9 if len(conds) * len(tasks) <= 20 else 7, padding=1)
    if "chance" in table:
        for j, ch in enumerate(table["chance"].astype(float)):
            if not math.isnan(ch):
                ax.hlines(ch, j - 0.45, j + 0.45, colors="black", linestyles="--",
                          label="chance" if j == int(np.nanargmax(table["chance"].notna().values)) else None)
    ax.set_xticks(np.arange(len(tasks)), tasks, fontsize=10)
    ax.set(ylabel="headline score (0-1)", ylim=(0, 1.1),
           title=title or "grounding diagnostics: headline score per task under each video condition")
    ax.legend(fontsize=9, ncol=len(conds) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False,
              title="condition (dashed: chance)", title_fontsize=9)
    _save(fig, Path(path) if path is not None else None)
    plt.close(fig)
    return fig


# ---- per task, and the answers behind the numbers --------------------------------------------------------------

def task_table(results: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """The paper's per-task table (§6): one row per task of `vvkit.schema.TASKS` present, in that order, scored its own
    way (`vvkit.schema.HEADLINE_METRIC`: DarkEventInfer judge mean 0-2, MixVidQA / multiple-choice accuracy, open-ended
    judge verdict, caption AutoDQ F1). `results` is {policy: {condition: metrics}}; columns are `<policy>` (real
    video), then `<policy> <condition>` for every other condition present (a blank column as high as the video one
    means the gain does not come from watching), and `change` = last minus first policy on the video score."""
    names = list(results)
    conds = list(dict.fromkeys(c for by_cond in results.values() for c in by_cond))
    conds = ["video"] * ("video" in conds) + [c for c in conds if c != "video"]
    present = {t for by_cond in results.values() for m in by_cond.values() for t in m}
    tasks = [t for t in TASKS if t in present]
    table = pd.DataFrame(index=pd.Index(tasks, name="task"))
    for name in names:
        for c in conds:
            col = name if c == "video" else f"{name} {c}"
            metrics = results[name].get(c, {})
            table[col] = [float(metrics[t][HEADLINE_METRIC[t]]) if t in metrics else math.nan for t in tasks]
    if len(names) >= 2 and "video" in conds:
        table["change"] = table[names[-1]] - table[names[0]]
    return table


GALLERY_CHARS = 100  # characters per title line: 10 pt text within an 8.4-inch figure
SCORE_SCALE = {"dark_event": "judge, 0-2", "mixvid": "1 = right", "mcq": "1 = right", "open_ended": "judge verdict",
               "caption": "AutoDQ"}


def _short(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def gallery_title(pred: dict, row: Row) -> str:
    """What a gallery figure says: the task and what its frames show, the question, the reference, the policy's
    answer and its score, wrapped to the figure's width."""
    from vvkit.synth.viz import wrap_text

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
    score = "-" if score is None or (isinstance(score, float) and math.isnan(score)) else f"{float(score):g}"
    scale = SCORE_SCALE.get(task)
    return wrap_text(f"{what} \u00b7 {row.id}\nQuestion: {_short(row.problem)}\nReference: {_short(row.solution)}\n"
                     f"Answer: {answer} \u2192 score {score}" + (f" ({scale})" if scale else ""), GALLERY_CHARS)


def answer_gallery(predictions: list[dict], rows: list[Row], frames: dict,
                   tasks: Sequence[str] = ("dark_event", "mixvid"), per_task: int = 2) -> list[Figure]:
    """The first `per_task` predictions of each task drawn with their row's frames (the dark span for DarkEventInfer,
    the A/B chunk bar for MixVidQA, plain sampled frames otherwise), titled with the question, the reference, the
    policy's answer and its score: what a score is made of. Rows are matched by id; a missing one is a KeyError."""
    import matplotlib.pyplot as plt

    from vvkit.synth.viz import FONT, frame_grid, plot_dark_event, plot_mixvid
    from vvkit.video import FramePolicy, read_video

    by_id = {r.id: r for r in rows}
    figs = []
    for task in tasks:
        for pred in [p for p in predictions if p.get("problem_type") == task][:per_task]:
            if pred["id"] not in by_id:
                raise KeyError(f"prediction {pred['id']!r} ({task}): no row with this id among the {len(rows)} rows "
                               "given (pass the rows that were evaluated)")
            row = by_id[pred["id"]]
            if task == "dark_event":
                fig = plot_dark_event(row, frames)
            elif task == "mixvid":
                fig = plot_mixvid(row, frames)
            else:
                clip = read_video(row.video, FramePolicy.from_dict(frames or {}), edits=row.edits)
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


# ---- completions viewer ---------------------------------------------------------------------------------------

VIEW_COLUMNS = ("step", "policy", "condition", "id", "problem_type", "solution", "completion", "answer", "reward",
                "rewards", "score")
GROUP_COLUMNS = ("step", "policy", "condition", "id", "problem_type", "solution")  # shared by a prompt's completions


def completions_table(policy: Any, rows: Sequence[Any], frames: dict, label: str, rewards: Any,
                      temperature: float = 1.0, max_new_tokens: int = 64, seed: int = 0) -> pd.DataFrame:
    """One sampled completion per row from a policy folder, scored with the run's reward settings (`rewards`: the
    RewardConfig GRPO pays with) through `vvkit.evaluate.sample_and_score`: what the policy writes before and after
    a stage, graded as training grades it."""
    from vvkit.evaluate import sample_and_score
    from vvkit.model import load_policy

    model, processor = load_policy(policy)
    recs = [g[0] for g in sample_and_score(model, processor, rows, rewards, frames, temperature=temperature,
                                           max_new_tokens=max_new_tokens, seed=seed)]
    return pd.DataFrame({"task": [r.problem_type for r in rows], "solution": [r.solution for r in rows],
                         label: [r["completion"] for r in recs],
                         "reward": [None if r["reward"] is None else round(r["reward"], 3) for r in recs]})


def _group_stats(group: Sequence[dict]) -> tuple[np.ndarray, float, float]:
    rewards = np.array([np.nan if r.get("reward") is None else r["reward"] for r in group], dtype=float)
    std = float(np.nanstd(rewards, ddof=1)) if len(group) > 1 else 0.0
    return rewards, float(np.nanmean(rewards)), 0.0 if math.isnan(std) else std


def group_table(records: Sequence[dict], step: int | None = None, task: str | None = None,
                varied: bool = False) -> pd.DataFrame:
    """One GRPO group from a stage's completions.jsonl: the G completions of one prompt, their rewards, the group
    mean and std, and each completion's advantage A_i = (r_i - mean) / std (TRL's `scale_rewards="group"`; 0 when
    the group's rewards are all equal). The group is the latest logged one (at `step` if given) of `task` (any if
    None) and, with `varied`, whose rewards differ: the groups GRPO learns from."""
    train = [r for r in records if r.get("mode", "train") == "train"]
    if not train:
        raise ValueError("no training completions logged (grpo_training.save_completions = 0?)")
    steps = sorted({r["step"] for r in train}, reverse=True) if step is None else [step]
    for s_ in steps:
        at = [r for r in train if r["step"] == s_ and (task is None or r.get("problem_type") == task)]
        for gid in dict.fromkeys(r["id"] for r in at):
            group = [r for r in at if r["id"] == gid]
            rewards, mean, std = _group_stats(group)
            if varied and std <= 1e-6:
                continue
            adv = (rewards - mean) / std if std > 1e-6 else np.zeros_like(rewards)
            df = pd.DataFrame({"completion": [r["completion"] for r in group], "reward": rewards.round(3),
                               "advantage": adv.round(2)})
            df.attrs.update(step=s_, id=gid, task=group[0].get("problem_type"), solution=group[0].get("solution"),
                            mean=round(mean, 3), std=round(std, 3))
            return df
    want = f"{task} " if task else ""
    raise ValueError(f"no {'varied ' * varied}{want}group logged at step(s) {steps[:5]}{'...' * (len(steps) > 5)}; "
                     f"logged steps: {sorted({r['step'] for r in train})[:10]}")


def teaching_group(records: Sequence[dict], tasks: Sequence[str] = ("dark_event", "mixvid")) -> pd.DataFrame:
    """The group to show a reader: the latest varied group of the first of `tasks` that has one, else the latest
    varied group of any task, else the latest group (`group_table`)."""
    for task, varied in [*((t, True) for t in tasks), (None, True), (None, False)]:
        try:
            return group_table(records, task=task, varied=varied)
        except ValueError:
            continue
    raise ValueError("no training completions logged (grpo_training.save_completions = 0?)")


def one_per_task(rows: Sequence[Row], tasks: Sequence[str] | None = None) -> list[Row]:
    """The first row of each task (`vvkit.schema.TASKS` order by default) that `rows` hold: a preview set."""
    firsts = {}
    for r in rows:
        firsts.setdefault(r.problem_type, r)
    return [firsts[t] for t in (tasks or TASKS) if t in firsts]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3f}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_cell(x)}" for k, x in v.items())
    return "" if v is None else str(v)


def completion_groups(records: Sequence[dict]) -> list[list[dict]]:
    """Records grouped by prompt (training step and row id), in first-seen order: GRPO's G completions of one
    prompt are compared with each other, so they are read together."""
    groups: dict[tuple, list[dict]] = {}
    for i, r in enumerate(records):
        key = (r.get("step"), r.get("policy"), r.get("condition"), r.get("id", i if "step" not in r else None))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def _prompt_text(row: Any) -> str:
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    options = get("options") or []
    return str(get("problem", "")) + ("".join(f"\n{o}" for o in options) if options else "")


PRE = "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;font-family:monospace;margin:0"


def group_html(group: Sequence[dict], row: Any = None) -> str:
    """One prompt: what is shared (task, id, step, the question and its options when `row` is given, the
    reference), then a table of its completions with their rewards."""
    first = group[0]
    facts = [f"<b>{html.escape(c)}</b> {html.escape(_cell(first[c]))}" for c in GROUP_COLUMNS[:-1]
             if first.get(c) is not None]
    parts = [f"<p style='margin:4px 0'>{' &middot; '.join(facts)} &middot; {len(group)} completion(s)</p>"]
    if row is not None:
        parts.append(f"<p style='margin:4px 0'><b>prompt</b></p><pre style='{PRE}'>{html.escape(_prompt_text(row))}"
                     "</pre>")
    if first.get("solution") is not None:
        parts.append(f"<p style='margin:4px 0'><b>reference</b> {html.escape(str(first['solution']))}</p>")
    cols = [c for c in VIEW_COLUMNS if c not in GROUP_COLUMNS and any(c in r for r in group)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in group:
        cells = [f"<td style='{PRE};max-width:48em'>{html.escape(_cell(r.get(c)))}</td>" if c == "completion"
                 else f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols]
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = (f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>{head}</tr>{''.join(body)}"
             "</table>")
    return "<div style='margin-bottom:1em'>" + "".join(parts) + table + "</div>"


def completions_html(records: Sequence[dict], title: str = "completions", rows: Sequence[Any] = ()) -> str:
    """A static HTML page of completions, one section per prompt (text escaped, long reasoning kept); `rows`
    (Row objects or dicts with an `id`) add each prompt's question and options."""
    by_id = {(r.get("id") if isinstance(r, dict) else r.id): r for r in rows}
    body = "".join(group_html(g, by_id.get(g[0].get("id"))) for g in completion_groups(records))
    return (f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h2>{html.escape(title)}</h2>{body}</body></html>")


def show_completions(records: Sequence[dict], out_path: str | os.PathLike, n: int = 24,
                     interactive: bool | None = None, title: str = "completions", rows: Sequence[Any] = ()) -> Path:
    """Write the first `n` prompts (each with all its completions) as HTML to `out_path`; in a live notebook also
    open a viewer (ipywidgets) under its title that browses every prompt, filtered by task, one group at a time."""
    from vvkit.io import atomic_write_text
    from vvkit.rundir import is_interactive

    records = list(records)
    groups = completion_groups(records)
    path = atomic_write_text(Path(out_path), completions_html([r for g in groups[:n] for r in g], title, rows))
    if interactive if interactive is not None else is_interactive():
        from IPython.display import display

        display(completions_viewer(groups, title, rows))
    return path


def completions_viewer(groups: Sequence[Sequence[dict]], title: str = "completions", rows: Sequence[Any] = ()) -> Any:
    """Title, then the controls (task, prompt slider, previous / next), then the chosen prompt's completions."""
    import ipywidgets as w

    by_id = {(r.get("id") if isinstance(r, dict) else r.id): r for r in rows}
    tasks = sorted({str(g[0].get("problem_type")) for g in groups})
    count = {t: sum(str(g[0].get("problem_type")) == t for g in groups) for t in tasks}
    task = w.Dropdown(options=[(f"all tasks ({len(groups)} prompts)", "all")]
                      + [(f"{t} ({count[t]})", t) for t in tasks], description="task")
    pick = w.IntSlider(min=0, max=max(0, len(groups) - 1), description="prompt", continuous_update=False,
                       readout=False, layout=w.Layout(width="30%"))
    prev, nxt = (w.Button(description=d, tooltip=t, layout=w.Layout(width="3em"))
                 for d, t in (("<", "previous prompt"), (">", "next prompt")))
    where, view = w.Label(), w.HTML()

    def chosen() -> list[Sequence[dict]]:
        return [g for g in groups if task.value == "all" or str(g[0].get("problem_type")) == task.value]

    def render(*_: Any) -> None:
        pick_groups = chosen()
        pick.max = max(0, len(pick_groups) - 1)
        if not pick_groups:
            where.value, view.value = "no prompts", ""
            return
        g = pick_groups[pick.value]
        where.value = f"prompt {pick.value + 1} of {len(pick_groups)}"
        view.value = group_html(g, by_id.get(g[0].get("id")))

    def step(delta: int) -> None:
        pick.value = min(pick.max, max(0, pick.value + delta))

    task.observe(lambda _: (setattr(pick, "value", 0), render()), "value")
    pick.observe(render, "value")
    prev.on_click(lambda _: step(-1))
    nxt.on_click(lambda _: step(1))
    render()
    return w.VBox([w.HTML(f"<h3 style='margin:8px 0 4px'>{html.escape(title)}</h3>"),
                   w.HBox([task, prev, pick, nxt, where], layout=w.Layout(flex_flow="row wrap", align_items="center")),
                   view])


def rounded(obj: Any, digits: int = 4) -> Any:
    """Floats in nested dicts / lists rounded for display (1.3800000000000001 -> 1.38); other values unchanged."""
    if isinstance(obj, float):
        return obj if math.isnan(obj) else round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(rounded(v, digits) for v in obj)
    return obj


# ---- the report -----------------------------------------------------------------------------------------------

def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table (no extra dependency); floats rounded to `digits`, NaN shown as '-'."""
    df = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def headline(metrics: dict[str, dict], tables: dict[str, pd.DataFrame] | None = None) -> dict:
    """Flat headline numbers: the last policy's headline metric per task and format rate, its change in mean
    primary score from the first policy, and the smallest grounding gap of each diagnosed policy."""
    names = list(metrics)
    last = metrics[names[-1]]
    out: dict[str, Any] = {"policy": names[-1]}
    for t, m in last.items():
        if t != "overall":
            out[f"{t}/{HEADLINE_METRIC.get(t, 'primary')}"] = m.get(HEADLINE_METRIC.get(t, "primary"))
    out["format_rate"] = last["overall"]["format_rate"]
    if len(names) > 1:
        out[f"primary_mean_change_vs_{names[0]}"] = last["overall"]["primary_mean"] - \
            metrics[names[0]]["overall"]["primary_mean"]
    for name, table in (tables or {}).items():
        if "grounding_gap" in table:
            out[f"{name}/min_grounding_gap"] = float(table["grounding_gap"].min())
    return out


def saved_figures(run_dir: str | os.PathLike) -> dict[str, Path]:
    """Every PNG under <run_dir>/figures, by file stem, in name order (so notebook numbers order them)."""
    return {p.stem: p for p in sorted((Path(run_dir) / "figures").glob("*.png"))}


SETTINGS_KEYS = ("frames", "prompt_version", "decoding", "judge", "open_ended_metric", "seed")


def write_report(run_dir: str | os.PathLike, headline_metrics: dict, tables: dict[str, pd.DataFrame | str] | None = None,
                 figures: dict[str, str | os.PathLike] | None = None, warnings: Sequence[str] = (),
                 settings: dict | None = None, title: str = "vvkit run report") -> Path:
    """`<run_dir>/report.md`: the headline numbers (JSON), the evaluation settings (frame policy, prompt version,
    decoding: from a results header), warnings, tables (DataFrames, or markdown text such as a benchmark's official
    breakdown) and figures (paths relative to the run folder; default:
    every PNG in <run_dir>/figures)."""
    from vvkit.io import atomic_write_text

    run_dir = Path(run_dir)
    figures = saved_figures(run_dir) if figures is None else figures
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    lines = [f"# {title}", "", f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} from `{run_dir.name}`"
             + (f" (seed {run.get('seed')}, code {run.get('code_version')})" if run else "") + ".", ""]
    lines += ["## Headline", "", "```json", json.dumps(headline_metrics, indent=2, default=str), "```", ""]
    if settings:
        shown = {k: settings[k] for k in SETTINGS_KEYS if k in settings}
        lines += ["## Evaluation settings", "", "```json", json.dumps(shown, indent=2, default=str), "```", ""]
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    for name, df in (tables or {}).items():
        lines += [f"## {name}", "", df if isinstance(df, str) else markdown_table(df), ""]
    if figures:
        lines += ["## Figures", ""]
        for name, p in figures.items():
            rel = Path(os.path.relpath(Path(p).resolve(), run_dir.resolve())).as_posix()
            lines += [f"### {name}", "", f"![{name}]({rel})", ""]
    return atomic_write_text(run_dir / "report.md", "\n".join(lines))


__all__ = ["RunLogs", "answer_gallery", "compare_table", "completion_groups", "completions_html", "completions_viewer",
           "gallery_title", "group_html", "group_table", "headline", "load_run", "markdown_table", "one_per_task", "plot_diagnostics",
           "plot_training", "rounded", "saved_figures", "show_completions", "task_table", "teaching_group", "training_frame",
           "write_report"]
