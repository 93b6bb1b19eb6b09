"""The kit's test sets as lmms-eval tasks, so any model lmms-eval knows is scored on DarkEventInfer, MixVidQA and the
other held-out rows exactly as the kit scores its own policies.

lmms-eval's task format (EvolvingLMMs-Lab/lmms-eval, `lmms_eval/tasks/<task>/`): one folder per task, a YAML that
names the data, the prompt and the metrics, and a `utils.py` with `doc_to_visual`, `doc_to_text`, `process_results`
and the aggregations; folders outside the package load with `--include_path`. Here every task folder holds its rows
as JSONL (`dataset_path: json`), the prompt the kit's evaluation uses, and each row's video written out as an mp4
with its edits applied (DarkEventInfer's black span, MixVidQA's interleaving; the kit applies them lazily at decode
time, another harness reads files). `utils.py` is a copy of `vvkit/lmms_template/utils.py`, which scores through
`score_doc` below: `vvkit.rewards.score_rows` with the exporting run's reward settings and the judge they name
(offline by default, HTTP when configured), and the kit's metrics (`vvkit.evaluate.task_metrics`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Sequence

from vvkit.config import ConfigError, read_params, stage_config
from vvkit.evaluate import task_metrics
from vvkit.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from vvkit.prompts import build_prompt, plain_prompt
from vvkit.rewards.parsing import gt_letter, mcq_choice
from vvkit.rewards.registry import RewardConfig, make_judge
from vvkit.rewards.scorer import reward_settings, score_rows
from vvkit.rundir import RunDir
from vvkit.schema import HEADLINE_METRIC, TASKS, Row, load_rows, option_letter
from vvkit.video import VideoError, materialize

TEMPLATE = Path(__file__).with_name("lmms_template") / "utils.py"
SETTINGS_FILE = "vvkit_task.json"
DATA_FILE = "test.jsonl"
EXPORT_STYLES = ("reason", "plain")  # the authors' style needs a system turn, which lmms-eval's chat models omit
# lmms-eval's default reasoning tags (`--reasoning_tags`), stripped before its own multiple-choice reader runs.
LMMS_REASONING_TAGS = (("<think>", "</think>"), ("<analysis>", "</analysis>"))

# Metrics per task: the kit's headline (`vvkit.schema.HEADLINE_METRIC`) first, then the rest of `task_metrics`.
# Multiple-choice tasks also report how lmms-eval's own reader (`extract_mcq_answer`) reads the same outputs.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "dark_event": ("score_mean", "score_sum", "format_rate"),
    "mixvid": ("accuracy", "format_rate"),
    "mcq": ("accuracy", "format_rate", "accuracy_lmms_reading", "reading_agreement"),
    "open_ended": ("score", "format_rate"),
    "caption": ("f1", "precision", "recall", "format_rate"),
}
assert all(TASK_METRICS[t][0] == HEADLINE_METRIC[t] for t in TASKS)


@dataclass
class ExportedTask:
    """One task folder: its lmms-eval name, folder, rows and the metrics it reports."""

    name: str
    task: str
    folder: Path
    n_rows: int
    metrics: tuple[str, ...]


# ---- export --------------------------------------------------------------------------------------------------------

def _video_file(row: Row, videos: Path) -> Path:
    """The row's video as one mp4 with its edits applied: an edited row's written out under its id, a plain video
    copied once under its own name (rows asking about the same video share it)."""
    if row.meta.get("window"):
        raise ValueError(f"row {row.id!r}: meta['window'] cuts its video at decode time, which lmms-eval's readers "
                         "do not do; export rows without windows (the kit's own test sets have none)")
    if row.edits or not isinstance(row.video, str):
        out = videos / f"{row.id}.mp4"
        return out if out.is_file() else materialize(row.video, row.edits, out)
    source = Path(row.video)
    out = videos / f"{source.stem}-{hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:8]}.mp4"
    if out.is_file():
        return out
    if source.suffix.lower() != ".mp4":
        return materialize(row.video, None, out)
    shutil.copyfile(source, out)
    return out


def _fresh_folder(folder: Path) -> None:
    """Empty a task folder this exporter wrote before (a re-export replaces it); refuse any other non-empty folder."""
    if (folder / SETTINGS_FILE).is_file():
        shutil.rmtree(folder)
    elif folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"{folder}: exists, is not empty and holds no {SETTINGS_FILE}; export into another folder")
    folder.mkdir(parents=True, exist_ok=True)


def _yaml(name: str, data: Path, metrics: Sequence[str], max_new_tokens: int) -> str:
    """The task YAML. `reasoning_tags: none` hands the raw completion to `process_results`: the kit's format check
    needs the <think> block that lmms-eval otherwise strips."""
    metric_list = "".join(f"  - metric: {m}\n    aggregation: !function utils.aggregate_{m}\n"
                          f"    higher_is_better: true\n" for m in metrics)
    return (f"task: {name}\n"
            f"dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
            f"test_split: test\n"
            f"output_type: generate_until\n"
            f"doc_to_visual: !function utils.doc_to_visual\n"
            f"doc_to_text: !function utils.doc_to_text\n"
            f"doc_to_target: solution\n"
            f"reasoning_tags: none\n"
            f"generation_kwargs:\n  max_new_tokens: {int(max_new_tokens)}\n  temperature: 0\n  do_sample: false\n"
            f"process_results: !function utils.process_results\n"
            f"metric_list:\n{metric_list}"
            f"metadata:\n  - version: 1.0\n")


def export_tasks(rows: Sequence[Row], out: str | os.PathLike, rewards: RewardConfig | dict | None = None, *,
                 prefix: str = "vvkit", prompt_style: str = "reason", max_new_tokens: int = 2048) -> list[ExportedTask]:
    """Write one lmms-eval task folder per task present in `rows` under `out`, plus the group `<prefix>` over them.

    Each folder: `<prefix>_<task>.yaml`, `utils.py`, `vvkit_task.json` (reward settings, prompt style, metrics),
    `test.jsonl` (one doc per row: id, problem_type, prompt, video, solution and the row as JSON) and `videos/`.
    The YAML names its data by absolute path, so export again after moving the folder."""
    if prompt_style not in EXPORT_STYLES:
        raise ValueError(f"prompt_style={prompt_style!r}; choose one of {EXPORT_STYLES}")
    if not rows:
        raise ValueError("no rows to export")
    settings = reward_settings(rewards if rewards is not None else {})
    out = Path(out).resolve()
    by_task: dict[str, list[Row]] = {}
    for r in rows:
        by_task.setdefault(r.problem_type, []).append(r)
    prompt = build_prompt if prompt_style == "reason" else plain_prompt
    exported = []
    for task in [t for t in TASKS if t in by_task]:
        name, folder = f"{prefix}_{task}", out / f"{prefix}_{task}"
        _fresh_folder(folder)
        videos = folder / "videos"
        videos.mkdir()
        docs = []
        for r in by_task[task]:
            video = _video_file(r, videos)
            local = Row(**{**r.to_dict(), "video": str(video), "edits": None})
            docs.append({"id": r.id, "problem_type": task, "prompt": prompt(r), "video": f"videos/{video.name}",
                         "solution": r.solution, "row": json.dumps(local.to_dict())})
        atomic_write_jsonl(folder / DATA_FILE, docs)
        metrics = TASK_METRICS[task]
        atomic_write_json(folder / SETTINGS_FILE, {"task": task, "prompt_style": prompt_style, "metrics": metrics,
                                                   "rewards": settings, "n_rows": len(docs)})
        shutil.copyfile(TEMPLATE, folder / "utils.py")
        atomic_write_text(folder / f"{name}.yaml", _yaml(name, folder / DATA_FILE, metrics, max_new_tokens))
        exported.append(ExportedTask(name, task, folder, len(docs), metrics))
    atomic_write_text(out / f"{prefix}.yaml", f"group: {prefix}\ntask:\n" +
                      "".join(f"  - {t.name}\n" for t in exported))
    return exported


def export_run_tasks(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, split: str = "test",
                     rows_path: str | os.PathLike | None = None, prefix: str = "vvkit") -> list[ExportedTask]:
    """Export a run's held-out rows (`split` of its dataset, or `rows_path`) with the run's reward settings (its judge
    cache included), prompt style and completion length (its `analysis` section); default folder `RunDir.lmms_tasks`."""
    run = RunDir(run_dir)
    if not run.params.is_file():
        raise ConfigError(f"{run.params}: no params.yaml; pass a run folder written by `vvkit run` or the notebooks")
    params = read_params(run.params)
    cfg = stage_config(params, "analysis", run_dir=run.root, where=str(run.params))
    data_dir = (params.get("data_synthesis") or {}).get("out_dir", "data")
    path = Path(rows_path) if rows_path else (Path(cfg.eval_data) if cfg.eval_data and split == "test"
                                               else run.rows(split, data_dir))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no rows; build the run's data first (notebook 01) or pass --rows")
    style = cfg.prompt_style if cfg.prompt_style in EXPORT_STYLES else "reason"
    return export_tasks(load_rows(path), out or run.lmms_tasks, cfg.reward_config().settings(str(run.root)),
                        prefix=prefix, prompt_style=style, max_new_tokens=cfg.max_new_tokens)


# ---- scoring inside lmms-eval (called from the exported utils.py) ---------------------------------------------------

@cache
def _settings(folder: str) -> dict:
    return json.loads((Path(folder) / SETTINGS_FILE).read_text())


def lmms_reading(text: str, letters: str) -> str | None:
    """The letter lmms-eval reads from `text` (its default reasoning tags stripped, then `extract_mcq_answer`, the
    reader Video-MME and others share), or None for no letter; ImportError where lmms-eval is not installed."""
    from lmms_eval.api.reasoning import strip_reasoning_tags
    from lmms_eval.tasks._task_utils.mcq_extract import extract_mcq_answer

    return extract_mcq_answer(strip_reasoning_tags(text, [list(t) for t in LMMS_REASONING_TAGS]), list(letters)) or None


@dataclass
class Parity:
    """Two readers of the same outputs: how many they read alike, and every output they read differently."""

    n: int
    agree: int
    disagreements: list[dict]

    @property
    def rate(self) -> float:
        return self.agree / self.n if self.n else float("nan")


def reading_parity(texts: Sequence[str], options: Sequence[list[str]], expected: Sequence[str | None] | None = None
                   ) -> Parity:
    """The kit's `mcq_choice` against lmms-eval's reading on the same outputs (no answer counts as one reading);
    each disagreement keeps both readings and, with `expected`, the right one."""
    expected = list(expected) if expected is not None else [None] * len(texts)
    agree, diffs = 0, []
    for text, opts, exp in zip(texts, options, expected):
        kit, lmms = mcq_choice(text, opts), lmms_reading(text, "".join(option_letter(o) for o in opts))
        if kit == lmms:
            agree += 1
        else:
            diffs.append({"text": text, "kit": kit, "lmms": lmms, "expected": exp})
    return Parity(len(texts), agree, diffs)


def score_doc(folder: str | os.PathLike, doc: dict, text: str) -> dict:
    """One completion scored as the kit's evaluation scores it (`score_rows`, reading="any"), as the prediction record
    `task_metrics` aggregates; multiple-choice records also carry lmms-eval's reading of the same text."""
    settings = _settings(str(folder))
    row = json.loads(doc["row"])
    rec = score_rows([text], [row], settings["rewards"], make_judge(**settings["rewards"]), reading="any")[0]
    rec = {"id": doc["id"], "problem_type": row["problem_type"], "n_options": len(row["options"] or []) or None,
           "completion": text, **rec}
    if row["problem_type"] == "mcq":
        letters = "".join(option_letter(o) for o in row["options"])
        rec.update(solution=gt_letter(row["solution"]), kit_choice=mcq_choice(text, row["options"]),
                   lmms_choice=lmms_reading(text, letters))
    return rec


def process_results(folder: str | os.PathLike, doc: dict, results: Sequence[str]) -> dict:
    """lmms-eval's `process_results` for an exported task: the doc's record under each of the task's metrics."""
    rec = score_doc(folder, doc, results[0])
    return {m: rec for m in _settings(str(folder))["metrics"]}


def aggregate(records: Sequence[dict], metric: str) -> float:
    """A task's metric over its prediction records: the kit's `task_metrics`, plus the accuracy of lmms-eval's
    reading and the share of outputs the two readers read alike (no answer counts as one reading)."""
    if metric == "accuracy_lmms_reading":
        return sum(r["lmms_choice"] == r["solution"] for r in records) / len(records)
    if metric == "reading_agreement":
        return sum(r["lmms_choice"] == r["kit_choice"] for r in records) / len(records)
    return float(task_metrics(list(records))[metric])


def main(args: Any) -> int:
    """`vvkit lmms-tasks` (arguments from `vvkit.cli`): export, then print an lmms-eval command for any model."""
    if not args.run and not (args.rows and args.out):
        raise ConfigError("lmms-tasks: give --run RUN (its held-out rows and reward settings) or --rows FILE --out DIR")
    try:
        tasks = (export_run_tasks(args.run, args.out, args.split, args.rows, args.prefix) if args.run
                 else export_tasks(load_rows(args.rows), args.out, prefix=args.prefix))
    except (ValueError, VideoError) as e:  # a row lmms-eval cannot read, an unreadable video
        print(f"vvkit: error: {e}", file=sys.stderr)
        return 2
    for t in tasks:
        print(f"{t.name}: {t.n_rows} rows, metrics {', '.join(t.metrics)} ({t.folder})")
    folder = tasks[0].folder.parent
    print(f"\nscore any model lmms-eval knows on them, offline:\n  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m "
          f"lmms_eval --model <model> --model_args <args> --tasks {args.prefix} --include_path {folder} "
          f"--output_path <out>")
    return 0
