"""The paper's experiment in miniature (paper §3-§6): RL from an instruction-following policy, no SFT on the proxy
tasks, one format-gated reward routed per task, every task scored on held-out videos. `params/default.yaml` is this
study; notebook 03 and `benchmarks/bench_study.py` run its arms through the functions below, so both read their settings
from one params file.

1. `vvkit.instruct.build_instruct`: the "instruct" starting policy, standing in for Qwen2.5-VL-7B-Instruct.
2. `vvkit.data.rl_rows`: the RL rows, from the other half of the training videos, `train_mix[task]` rows per task. The
   comparison arms change only the mix (`no_proxy_mix`: the proxy tasks' rows given to multiple choice and captions)
   or the learner (`sft_arm`: supervised steps on the reference answers of the GRPO rows).
3. `vvkit.data.heldout_rows` and `task_scores`: every task scored on held-out rows under the grounding conditions.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from vvkit.config import stage_config
from vvkit.data import load_split, no_proxy_mix, rl_rows, with_reasoning
from vvkit.evaluate import evaluate
from vvkit.instruct import sft_config, start_policy
from vvkit.rundir import repo_root
from vvkit.schema import HEADLINE_METRIC, TASKS, Row, save_rows
from vvkit.sft import warm_start
from vvkit.synth.build import build_dataset
from vvkit.train import train

ARMS = ("start", "grpo", "no_proxy", "sft")
TRAINED_ARMS = ("grpo", "no_proxy", "sft")


# ---- the RL rows and the arms ---------------------------------------------------------------------------------------
def sft_arm(cfg: Any, start: Path, train: Sequence[Row]) -> Path:
    """The SFT control: supervised steps on the reference answers of the GRPO rows (`rl_rows`), as many optimizer
    steps as GRPO, each on as many sequences as a GRPO step's completions."""
    out = Path(cfg.run_dir)
    rows_path = out / "sft_rows.jsonl"
    save_rows(with_reasoning(rl_rows(cfg, train), cfg.sft_reasoning), rows_path)
    batch = int(cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps)

    return warm_start(sft_config(cfg, out, start, rows_path, int(cfg.max_steps), batch, cfg.seed))


BOOKKEEPING = {"report_to": "none", "save_strategy": "no", "logging_steps": 10, "save_completions": 4,
               "disable_tqdm": True}  # the benchmark's arms: no checkpoints, no TensorBoard


def build_data(params: dict, root: str | Path) -> Path:
    """The study's dataset from the params' `data_synthesis` section, built (or reused by config hash) in `root`."""

    return Path(build_dataset(stage_config(params, "data_synthesis", run_dir=str(root)))["out_dir"])


def arm_config(params: dict, arm: str, seed: int, run_dir: str | Path, data: str | Path,
               overrides: dict | None = None) -> Any:
    """The TrainConfig of one trained arm and seed: the params' `grpo_training` with `seed` as run.seed, the rows of
    `data`, and for `no_proxy` the mix of `no_proxy_mix`; data and the instruct policy do not depend on `seed`."""


    if arm not in TRAINED_ARMS:
        raise ValueError(f"arm {arm!r} unknown; trained arms are {TRAINED_ARMS}")
    p = copy.deepcopy(params)
    p.setdefault("run", {})["seed"] = int(seed)
    over = {**BOOKKEEPING, "train_data": str(Path(data) / "train.jsonl"), **(overrides or {})}
    if arm == "no_proxy":
        over["train_mix"] = no_proxy_mix((p.get("grpo_training") or {}).get("train_mix") or {})
    return stage_config(p, "grpo_training", run_dir=str(run_dir), overrides=over)


def run_arm(cfg: Any, arm: str) -> Path:
    """Train one arm from its config (`arm_config`): GRPO for grpo / no_proxy, the SFT control for sft."""

    if arm == "sft":
        rows = load_split(cfg, "train")
        return sft_arm(cfg, start_policy(cfg, rows), rows)
    return train(cfg)


# ---- evaluation ---------------------------------------------------------------------------------------------------
def task_score(task: str, metrics: dict) -> float:
    """The study's number per task: DarkEventInfer mean judge score (0-2), MixVidQA / multiple-choice accuracy,
    open-ended mean judge verdict, caption AutoDQ F1."""
    return float(metrics[HEADLINE_METRIC[task]])


def task_scores(policy: Any, rows: Sequence[Row], ecfg: Any, conditions: Sequence[str] = ("video", "blank"),
                out_dir: Path | None = None, judge: Any = None) -> dict[str, dict[str, float]]:
    """{task: {condition: score}} for every task present, evaluated under each condition ('video' is reported as
    'score', with its format rate); with `out_dir`, predictions land in `<out_dir>/<condition>/` (resumable)."""

    out: dict[str, dict[str, float]] = {}
    for cond in conditions:
        res = evaluate(policy, rows, ecfg, None if out_dir is None else Path(out_dir) / cond, condition=cond,
                       judge=judge)
        for task, m in res.metrics.items():
            if task != "overall":
                out.setdefault(task, {})["score" if cond == "video" else cond] = task_score(task, m)
                if cond == "video":
                    out[task]["format_rate"] = float(m["format_rate"])
    return out


# ---- over seeds -----------------------------------------------------------------------------------------------------
def seed_table(runs: Sequence[dict]) -> Any:
    """Per task and arm over the seeds of benchmark records ({"seed", "arm", "tasks": {task: {"score", "blank"}}}):
    the held-out score's mean, standard deviation, min and max, the blank-video mean, and the mean change from the
    start policy (the same start for every seed). How much a result varies between seeds, next to the result."""

    start = {r["seed"]: r["tasks"] for r in runs if r["arm"] == "start"}
    first_start = next(iter(start.values()), None)
    out = []
    for task in TASKS:
        for arm in [a for a in ARMS if any(r["arm"] == a for r in runs)]:
            recs = [r for r in runs if r["arm"] == arm and task in r["tasks"]]
            if not recs:
                continue
            vals = np.array([r["tasks"][task]["score"] for r in recs], dtype=float)
            base = [(start.get(r["seed"]) or first_start or {}).get(task, {}).get("score", np.nan) for r in recs]
            out.append({"task": task, "arm": arm, "seeds": len(recs), "mean": vals.mean(),
                        "sd": vals.std(ddof=1) if len(vals) > 1 else 0.0, "min": vals.min(), "max": vals.max(),
                        "blank": float(np.mean([r["tasks"][task].get("blank", np.nan) for r in recs])),
                        "change": float(np.mean(vals - np.array(base, dtype=float)))})
    return pd.DataFrame(out).set_index(["task", "arm"])


def benchmark_table(path: str | Path | None = None) -> Any:
    """`seed_table` of the study benchmark's results (default `benchmarks/results/study.json`)."""

    path = Path(path) if path else repo_root() / "benchmarks" / "results" / "study.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no study benchmark results; run `python benchmarks/bench_study.py`")
    return seed_table(json.loads(path.read_text())["runs"])
