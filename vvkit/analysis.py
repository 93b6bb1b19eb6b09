"""Read a run folder back and explain it: training curves, before/after tables, the grounding chart and `report.md`
(cleanrl's docs pair every run with its curves and a table of the numbers measured). Completion groups, HTML pages
and widgets are `vvkit.viewer`; frame figures and the answer gallery are `vvkit.viz`.

Inputs are the files the other stages write: `train/<stage>/metrics.jsonl` and `completions.jsonl`
(vvkit.callbacks / vvkit.grpo_trainer: TRL's GRPO metrics plus `reward/<task>`, `format_rate[/<task>]`),
`eval/<policy>/<condition>/results.json` (vvkit.evaluate) and `metrics/NN_name.json` (vvkit.run.record_metrics).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vvkit.evaluate import CONDITIONS, sample_and_score
from vvkit.io import atomic_write_text, read_jsonl
from vvkit.model import load_policy
from vvkit.rundir import RunDir, StageDir, read_metrics, repo_root
from vvkit.schema import HEADLINE_METRIC, TASKS
from vvkit.viz import save


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
            raise FileNotFoundError(f"{RunDir(self.run_dir).stage_dir(name).metrics}: no training log for stage "
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

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder (runs are made by `vvkit run` or the notebooks)")
    logs = RunLogs(run_dir, metrics=read_metrics(run_dir))
    for stage in sorted(p for p in (run_dir / "train").glob("*") if p.is_dir()):
        files = StageDir(stage)
        if files.metrics.is_file():
            logs.train[stage.name] = training_frame(read_jsonl(files.metrics))
        if files.completions.is_file():
            logs.completions[stage.name] = read_jsonl(files.completions)
    for res in sorted((run_dir / "eval").glob("*/**/results.json")):
        rel = res.parent.relative_to(run_dir / "eval")
        data = json.loads(res.read_text())
        if "metrics" in data:  # finished evaluations only
            logs.evals.setdefault(rel.parts[0], {})["/".join(rel.parts[1:])] = data
    return logs


# ---- training curves ------------------------------------------------------------------------------------------

def _columns(df: pd.DataFrame, prefix: str) -> list[str]:
    return sorted(c for c in df.columns if c.startswith(prefix) and c.count("/") == prefix.count("/"))


def smooth(values: pd.Series, window: int | None = None) -> pd.Series:
    """A centred rolling mean (window ~ 5% of the steps, at least 1): per-step GRPO rewards are noisy."""
    window = window or max(1, len(values) // 20)
    return values.rolling(window, min_periods=1, center=True).mean()


def steps_and_plain_numbers(ax: Any) -> None:
    """Whole steps on the x axis (a short run gets no 0.5 step) and plain y numbers (no '+1.234' offset)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)


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
    steps_and_plain_numbers(ax)
    ax.grid(alpha=0.3)
    if len(cols) > 1:
        ax.legend(fontsize=9)


def plot_training(df: pd.DataFrame, stage: str = "grpo") -> dict[str, Any]:
    """Five figures of a GRPO log: reward per task, format rate, completion length, KL and entropy, and the share of
    groups whose rewards are all equal (no advantage, no gradient); `save_curves` writes them to the run folder."""
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    tasks = _columns(df, "reward/")
    _panel(ax, df, (["reward"] if "reward" in df else []) + tasks, f"{stage}: reward per task", "mean reward",
           {c: c.split("/", 1)[-1] if "/" in c else "all tasks" for c in ["reward", *tasks]})
    out["reward_per_task"] = fig
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    cols = (["format_rate"] if "format_rate" in df else []) + _columns(df, "format_rate/")
    _panel(ax, df, cols, f"{stage}: well-formed <think>/<answer> completions", "format rate",
           {c: c.split("/", 1)[-1] if "/" in c else "all tasks" for c in cols})
    ax.set_ylim(-0.02, 1.02)
    out["format_rate"] = fig
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    _panel(ax, df, [c for c in ("completions/mean_length", "completions/mean_terminated_length") if c in df],
           f"{stage}: completion length", "tokens")
    if {"completions/min_length", "completions/max_length"} <= set(df):
        ax.fill_between(df.index, df["completions/min_length"], df["completions/max_length"], alpha=0.15,
                        label="min-max")
        ax.legend(fontsize=9)
    out["completion_length"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), layout="constrained")  # the notebook's width at 100 dpi
    _panel(axes[0], df, [c for c in ("kl",) if c in df], f"{stage}: KL to the reference", "KL (k3)")
    if "kl" not in df:
        axes[0].text(0.5, 0.35, "(beta = 0: no reference model, as the paper)", ha="center",
                     transform=axes[0].transAxes, color="grey", fontsize=8)
    _panel(axes[1], df, [c for c in ("entropy",) if c in df], f"{stage}: token entropy", "nats")
    out["kl_entropy"] = fig
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    _panel(ax, df, [c for c in ("frac_reward_zero_std",) if c in df], f"{stage}: groups with zero reward variance",
           "fraction of groups")
    ax.set_ylim(-0.02, 1.02)
    out["zero_std"] = fig
    for f in out.values():
        plt.close(f)
    return out


# drawn by vvkit.callbacks.LivePlot, which vvkit.train saves as figures/03_grpo_curves.png during training
LIVE_CURVES = ("reward_per_task", "completion_length")


def save_curves(figs: dict[str, Any], run: RunDir, name: str, leave_out: Sequence[str] = LIVE_CURVES) -> list[Path]:
    """Save `plot_training`'s figures as `run.figure(f"{name}_{curve}")`, leaving out the curves the live training
    plot already saved, so report.md shows each curve once."""
    return [save(fig, run.figure(f"{name}_{curve}")) for curve, fig in figs.items() if curve not in leave_out]


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
    if path is not None:
        save(fig, path)
    plt.close(fig)
    return fig


# ---- per task ------------------------------------------------------------------------------------------------

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



def benchmark_source(path: str | os.PathLike) -> str:
    """Where a committed benchmark table comes from, to print beside it: its results file and the preset (params
    file) and seeds it was run with; another run than the one a notebook shows."""

    path = Path(path)
    data = json.loads(path.read_text())
    shown = path.resolve().relative_to(repo_root()) if path.resolve().is_relative_to(repo_root()) else path
    seeds = data.get("seeds")
    return (f"{Path(shown).as_posix()}, made with {data.get('params', 'an unrecorded preset')}"
            + (f", seeds {', '.join(map(str, seeds))}" if seeds else ""))

# ---- what a policy writes -------------------------------------------------------------------------------------

def completions_table(policy: Any, rows: Sequence[Any], frames: dict, label: str, rewards: Any,
                      temperature: float = 1.0, max_new_tokens: int = 64, seed: int = 0) -> pd.DataFrame:
    """One sampled completion per row from a policy folder, scored with the run's reward settings (`rewards`: the
    RewardConfig GRPO pays with) through `vvkit.evaluate.sample_and_score`: what the policy writes before and after
    a stage, graded as training grades it."""

    model, processor = load_policy(policy)
    recs = [g[0] for g in sample_and_score(model, processor, rows, rewards, frames, temperature=temperature,
                                           max_new_tokens=max_new_tokens, seed=seed)]
    return pd.DataFrame({"task": [r.problem_type for r in rows], "solution": [r.solution for r in rows],
                         label: [r["completion"] for r in recs],
                         "reward": [None if r["reward"] is None else round(r["reward"], 3) for r in recs]})


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
    return {p.stem: p for p in sorted(RunDir(run_dir).figures.glob("*.png"))}


SETTINGS_KEYS = ("frames", "prompt_version", "decoding", "judge", "open_ended_metric", "seed")


def write_report(run_dir: str | os.PathLike, headline_metrics: dict,
                 tables: dict[str, pd.DataFrame | str] | None = None,
                 figures: dict[str, str | os.PathLike] | None = None, warnings: Sequence[str] = (),
                 settings: dict | None = None, title: str = "vvkit run report") -> Path:
    """`<run_dir>/report.md`: the headline numbers (JSON), the evaluation settings (frame policy, prompt version,
    decoding: from a results header), warnings, tables (DataFrames, or markdown text such as a benchmark's official
    breakdown) and figures (paths relative to the run folder; default:
    every PNG in <run_dir>/figures)."""

    run_dir = Path(run_dir)
    figures = saved_figures(run_dir) if figures is None else figures
    state = RunDir(run_dir).state
    run = json.loads(state.read_text()) if state.is_file() else {}
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
    return atomic_write_text(RunDir(run_dir).report, "\n".join(lines))


__all__ = ["LIVE_CURVES", "RunLogs", "benchmark_source", "compare_table", "completions_table", "headline",
           "load_run", "markdown_table", "plot_diagnostics", "plot_training", "rounded", "save_curves", "saved_figures",
           "smooth", "steps_and_plain_numbers", "task_table", "training_frame", "write_report"]
