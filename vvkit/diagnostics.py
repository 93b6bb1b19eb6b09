"""Grounding diagnostics: does the policy watch the video? The same rows are evaluated with the real video, shuffled
frames, a blank video and no video at all, and the scores are compared (users ask for exactly these checks:
Video-R1 #1, #43, #74; VideoChat-R1 #22). A task that scores as well without the video gets a loud warning.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vvkit.evaluate import (CONDITIONS, NO_INFO_CONDITIONS, EvalResult, GenerateFn, evaluate, run_judge,
                            policy_pair)
from vvkit.schema import Row


@dataclass
class Diagnostics:
    """The same rows under several conditions: per-condition results, a task x condition table, warnings."""

    results: dict[str, EvalResult]
    table: Any  # pandas DataFrame: index task; one column per condition, then chance, grounding_gap, order_gap
    warnings: list[str]


def grounding_table(metrics: dict[str, dict], margin: float = 0.05, name: str = "") -> tuple[Any, list[str]]:
    """Primary score per task and condition, `grounding_gap` = video minus the best of blank/no_video, `order_gap` =
    video minus shuffled; a warning line for every task whose grounding gap is below `margin`."""
    import pandas as pd

    tasks = sorted({t for m in metrics.values() for t in m if t != "overall"})
    table = pd.DataFrame(index=pd.Index(tasks, name="task"))
    for cond, m in metrics.items():
        table[cond] = [m.get(t, {}).get("primary", math.nan) for t in tasks]
    table["chance"] = [next((m[t]["chance"] for m in metrics.values() if "chance" in m.get(t, {})), math.nan)
                       for t in tasks]
    blind = [c for c in NO_INFO_CONDITIONS if c in metrics]
    warnings = []
    if "video" in metrics and blind:
        table["grounding_gap"] = table["video"] - table[blind].max(axis=1)
        for t in tasks:
            video, gap, chance = table.at[t, "video"], table.at[t, "grounding_gap"], table.at[t, "chance"]
            if math.isnan(gap) or gap >= margin:
                continue
            cond = table.loc[t, blind].astype(float).idxmax()
            floor = 0.0 if math.isnan(chance) else chance
            why = (f"it scores at chance level ({floor:.3f}) even with the video, so there is no grounding to measure "
                   f"yet" if video <= floor + margin else "the model does as well without the video: it is not "
                   "watching it")
            who = f"{name}: {t}" if name else t
            warnings.append(f"WARNING [grounding] {who}: {video:.3f} with the video vs {table.at[t, cond]:.3f} "
                            f"with {cond} (gap {gap:+.3f} < {margin}); {why}.")
    if "video" in metrics and "shuffled" in metrics:
        table["order_gap"] = table["video"] - table["shuffled"]
    return table, warnings


def diagnose(policy: Any, rows: Sequence[Row], cfg: Any, out_dir: str | os.PathLike | None = None,
             conditions: Sequence[str] | None = None, generate_fn: GenerateFn | None = None, judge: Any = None,
             margin: float = 0.05, policy_name: str | None = None) -> Diagnostics:
    """Evaluate `rows` with the real video, shuffled frames, a blank video and no video (each in
    `out_dir/<condition>/`), then compare: a task scoring as well without the video gets a loud warning."""
    conditions = list(conditions or CONDITIONS)
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; choose from {CONDITIONS}")
    path = None
    if isinstance(policy, (str, os.PathLike)):
        path = str(Path(policy).resolve())
        policy_name = policy_name or Path(path).name
        if generate_fn is None:  # load once for every condition
            model, processor, _ = policy_pair(policy)
            policy = (model, processor)
        else:
            policy = (None, None)
    judge = judge if judge is not None else run_judge(cfg)
    results = {}
    for cond in conditions:
        sub = Path(out_dir) / cond if out_dir is not None else None
        results[cond] = evaluate(policy, rows, cfg, sub, condition=cond, generate_fn=generate_fn, judge=judge,
                                 policy_name=policy_name, policy_path=path)
    label = policy_name or next(iter(results.values())).header["policy_name"]
    table, warnings = grounding_table({c: r.metrics for c, r in results.items()}, margin, label)
    for line in warnings:
        print(line)
    return Diagnostics(results, table, warnings)


__all__ = ["Diagnostics", "diagnose", "grounding_table"]
