"""The official scorers' breakdowns of benchmark results (lmms-eval's videomme scorer, NExT-QA's eval_mc.py,
MVBench's mean over tasks, Tarsier's DREAM-1K summary), the number each benchmark's table reports, and markdown
tables of both."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from vvkit.benchmarks.mvbench import MVBENCH_VIDEO_DIRS
from vvkit.io import atomic_write_json
from vvkit.schema import Row

# Video-MME's groups in the order its scorer (lmms-eval videomme utils) prints them.
VIDEOMME_DURATIONS = ("short", "medium", "long")
VIDEOMME_DOMAINS = ("Knowledge", "Film & Television", "Sports Competition", "Artistic Performance", "Life Record",
                    "Multilingual")
VIDEOMME_TASK_TYPES = ("Temporal Perception", "Spatial Perception", "Attribute Perception", "Action Recognition",
                       "Object Recognition", "OCR Problems", "Counting Problem", "Temporal Reasoning",
                       "Spatial Reasoning", "Action Reasoning", "Object Reasoning", "Information Synopsis")
# NExT-QA's question types (eval_mc.py): causal Why/How, temporal Before&After/When, descriptive Count/Location/Other;
# TP (previous) is counted with TN (next) as Before&After.
NEXTQA_TYPES = ("CW", "CH", "TN", "TC", "DC", "DL", "DO")
NEXTQA_GROUPS = ("C", "T", "D")
NEXTQA_NAMES = {"CW": "Why", "CH": "How", "TN": "Bef&Aft", "TC": "When", "DC": "Cnt", "DL": "Loc", "DO": "Other",
                "C": "Acc_C", "T": "Acc_T", "D": "Acc_D"}
BREAKDOWN_AXES = {
    "videomme": {"duration": VIDEOMME_DURATIONS, "domain": VIDEOMME_DOMAINS, "task_type": VIDEOMME_TASK_TYPES,
                 "sub_category": ()},
    "nextqa": {"group": NEXTQA_GROUPS, "type": NEXTQA_TYPES},
    "mvbench": {"task": tuple(MVBENCH_VIDEO_DIRS)},
    "dream1k": {"source": ()},
}


def _nextqa_type(row: Row) -> str:
    t = str(row.meta.get("type", "")).strip().upper()
    return "TN" if t == "TP" else t


def _group_key(row: Row, benchmark: str, axis: str) -> str | None:
    if benchmark == "nextqa":
        t = _nextqa_type(row)
        return (t[:1] if axis == "group" else t) or None
    value = row.meta.get(axis)
    return None if value is None or value == "" else str(value)


def _mcq_cell(preds: list[dict]) -> dict:
    scores = [float(p["score"]) for p in preds if p.get("score") is not None]
    return {"n": len(preds), "accuracy": sum(scores) / len(scores) if scores else math.nan,
            "answered": sum(p.get("choice") is not None for p in preds) / len(preds) if preds else math.nan}


def _caption_cell(preds: list[dict]) -> dict:
    """DREAM-1K's summary: precision and recall averaged over videos, F1 of the two averages (Tarsier's scorer)."""
    ok = [p for p in preds if p.get("precision") is not None and p.get("recall") is not None]
    prec = sum(p["precision"] for p in ok) / len(ok) if ok else math.nan
    rec = sum(p["recall"] for p in ok) / len(ok) if ok else math.nan
    f1 = 2 * prec * rec / (prec + rec) if ok and prec + rec > 0 else (0.0 if ok else math.nan)
    return {"n": len(preds), "precision": prec, "recall": rec, "f1": f1, "failed": len(preds) - len(ok)}


def breakdown(predictions: Sequence[dict], rows: Sequence[Row], benchmark: str) -> dict:
    """The official scorer's groups of one benchmark's prediction records (joined to `rows` by id):
    {"overall": cell, axis: {group: cell}} with cell {n, accuracy, answered} for multiple choice, {n, precision,
    recall, f1, failed} for DREAM-1K. Video-MME by duration, domain, task type and sub-category (lmms-eval's
    videomme scorer); NExT-QA by question group C / T / D and type, TP merged into TN (NExT-QA's eval_mc.py);
    MVBench per task plus "task_mean", the mean over tasks (MVBench reports that average); DREAM-1K by source.
    Groups come in the scorer's order; groups with no rows are left out."""
    if benchmark not in BREAKDOWN_AXES:
        raise ValueError(f"benchmark {benchmark!r} has no breakdown; choose one of {sorted(BREAKDOWN_AXES)}")
    by_id = {r.id: r for r in rows}
    unknown = [p["id"] for p in predictions if p["id"] not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} prediction(s) have no row (e.g. {unknown[0]!r}); pass the benchmark's rows")
    cell = _caption_cell if benchmark == "dream1k" else _mcq_cell
    out: dict[str, Any] = {"benchmark": benchmark, "overall": cell(list(predictions))}
    for axis, order in BREAKDOWN_AXES[benchmark].items():
        groups: dict[str, list[dict]] = {}
        for p in predictions:
            key = _group_key(by_id[p["id"]], benchmark, axis)
            if key is not None:
                groups.setdefault(key, []).append(p)
        if not groups:
            continue
        names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
        out[axis] = {g: cell(groups[g]) for g in names}
    if benchmark == "mvbench" and out.get("task"):
        accs = [c["accuracy"] for c in out["task"].values() if not math.isnan(c["accuracy"])]
        out["task_mean"] = sum(accs) / len(accs) if accs else math.nan
    return out


def attach_breakdown(result: Any, rows: Sequence[Row], benchmark: str) -> dict:
    """Compute `breakdown(result.predictions, rows, benchmark)`, store it as `result.header["breakdown"]` and, when
    the result has a folder, under the "breakdown" key of its results.json (next to "metrics")."""
    bd = breakdown(result.predictions, rows, benchmark)
    result.header["breakdown"] = bd
    folder = getattr(result, "out_dir", None)
    if folder is not None and (Path(folder) / "results.json").is_file():
        data = json.loads((Path(folder) / "results.json").read_text())
        atomic_write_json(Path(folder) / "results.json", {**data, "benchmark": benchmark, "breakdown": bd})
    return bd


def headline_score(bd: dict) -> float:
    """The number a benchmark's table reports, in percent: accuracy (MVBench: the mean over tasks), or DREAM-1K's
    AutoDQ F1."""
    if bd["benchmark"] == "mvbench" and "task_mean" in bd:
        return 100.0 * bd["task_mean"]
    key = "f1" if bd["benchmark"] == "dream1k" else "accuracy"
    return 100.0 * bd["overall"][key]


def _pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100.0 * x:.1f}"


def breakdown_table(bd: dict) -> str:
    """A markdown table of one breakdown: one line per group (axis, group, n, and the benchmark's numbers in %)."""
    keys = ("precision", "recall", "f1") if bd["benchmark"] == "dream1k" else ("accuracy", "answered")
    lines = ["| axis | group | n | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]

    def line(axis: str, group: str, c: dict) -> str:
        return f"| {axis} | {group} | {c['n']} | " + " | ".join(_pct(c[k]) for k in keys) + " |"

    lines.append(line("overall", "all", bd["overall"]))
    for axis in BREAKDOWN_AXES[bd["benchmark"]]:
        for group, c in bd.get(axis, {}).items():
            label = f"{group} ({NEXTQA_NAMES[group]})" if bd["benchmark"] == "nextqa" and group in NEXTQA_NAMES else group
            lines.append(line(axis, label, c))
    if "task_mean" in bd:
        lines.append(f"| task mean | all tasks | {sum(c['n'] for c in bd['task'].values())} | "
                     f"{_pct(bd['task_mean'])} |" + " |" * (len(keys) - 1))
    return "\n".join(lines)


def comparison_table(measured: dict[str, dict[str, float]], reference: dict[str, dict[str, float | None]]) -> str:
    """A markdown table of measured numbers next to numbers a user enters (e.g. the paper's, see docs/results.md):
    `measured` and `reference` map a column name to {benchmark: value in %}; a "Δ" column per measured column gives
    its difference from the first reference column. Benchmarks are the union of both, in order of appearance."""
    if not measured:
        raise ValueError("comparison_table: no measured column; pass {policy: {benchmark: percent}}")
    benches = list(dict.fromkeys(b for cols in (reference, measured) for col in cols.values() for b in col))
    first = next(iter(reference.values()), {}) if reference else {}
    ref_name = next(iter(reference), None)
    head = ["benchmark", *reference, *[c for m in measured for c in (m, f"Δ {m} vs {ref_name}" if ref_name else None)
                                      if c]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(x: float | None) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"

    for b in benches:
        cells = [b] + [num(col.get(b)) for col in reference.values()]
        for col in measured.values():
            value, ref = col.get(b), first.get(b)
            cells.append(num(value))
            if ref_name:
                cells.append("–" if value is None or ref is None else f"{value - ref:+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
