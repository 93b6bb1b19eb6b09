"""The paper's experiment in miniature (paper §3-§6): RL from an instruction-following policy, no SFT on the proxy
tasks, one format-gated reward routed per task, every task scored on held-out videos. `params/default.yaml` is this
study; notebook 03 and `benchmarks/bench_study.py` run its arms through the functions below, so both read their settings
from one params file.

1. The "instruct" starting policy, standing in for Qwen2.5-VL-7B-Instruct: shipped (`build_start`, run once by
   `tools/build_start.py`, loaded by `vvkit.shipped_start`) or built and cached per data (`vvkit.instruct`).
2. `vvkit.data.rl_rows`: the RL rows, from the other half of the training videos, `train_mix[task]` rows per task. The
   comparison arms change only the mix (`no_proxy_mix`: the proxy tasks' rows given to multiple choice and captions)
   or the learner (`sft_arm`: supervised steps on the reference answers of the GRPO rows).
3. `vvkit.data.heldout_rows` and `task_scores`: every task scored on held-out rows under the grounding conditions.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from vvkit.config import read_params, stage_config
from vvkit.data import INSTRUCT_TASKS, heldout_rows, load_split, no_proxy_mix, rl_rows, with_reasoning
from vvkit.evaluate import task_score, task_scores  # noqa: F401  (the study's numbers)
from vvkit.instruct import sft_config, start_policy, train_instruct
from vvkit.io import atomic_write_json, read_jsonl
from vvkit.rundir import StageDir, repo_root
from vvkit.schema import TASKS, Row, load_rows, save_rows
from vvkit.shipped_start import start_recipe, write_start
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


# ---- the shipped start ---------------------------------------------------------------------------------------------
def build_start(params_path: str | Path, out: str | Path, work: str | Path) -> Path:
    """Build the shipped instruct start from its params (`params/instruct_start.yaml`): its own toy world, supervised
    stages on every unedited single-clip row (cached in `work`, so a killed build resumes at its last stage), every
    task scored on held-out clips of that world after each stage (with the video and with black frames), then the
    policy and its manifest (recipe, rows, curve, file digests) written to `out`."""
    params, work = read_params(params_path), Path(work).resolve()
    data = build_data(params, work)
    train, test = load_rows(data / "train.jsonl"), load_rows(data / "test.jsonl")
    other = sorted({r.problem_type for r in train + test if r.problem_type not in INSTRUCT_TASKS or r.edits})
    if other:
        raise ValueError(f"{params_path}: data_synthesis makes {other} rows; the instruct start sees only unedited "
                         f"{list(INSTRUCT_TASKS)} rows (set task_mix to those tasks)")
    cfg = stage_config(params, "grpo_training", run_dir=str(work / "run"),
                       overrides={"instruct_cache": str(work / "stages"), "disable_tqdm": True})
    rows = with_reasoning(train, cfg.sft_reasoning)
    ecfg = stage_config(params, "analysis", run_dir=str(work), overrides={"progress": False})
    held = heldout_rows(test, ecfg.rows_per_task)
    curve: list[dict] = []

    def on_stage(steps: int, policy: Path) -> None:
        scores = task_scores(str(policy), held, ecfg, ("video", "blank"), work / "curve" / str(steps))
        runtime = [r["train_runtime"] for r in read_jsonl(StageDir(policy.parent).metrics) if "train_runtime" in r]
        train_s = (curve[-1]["train_seconds"] if curve else 0.0) + (runtime[-1] if runtime else float("nan"))
        curve.append({"steps": steps, "tasks": scores, "train_seconds": round(train_s, 1)})
        atomic_write_json(work / "curve.json", curve)
        print(f"[vvkit] instruct start, step {steps}: " + "  ".join(
            f"{t} {v['score']:.3f} (blank {v['blank']:.3f})" for t, v in sorted(scores.items())), flush=True)

    policy = train_instruct(cfg, rows, on_stage)
    try:
        code = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        code = "unknown"
    by_task = {t: sum(r.problem_type == t for r in rows) for t in INSTRUCT_TASKS}
    manifest = {"recipe": start_recipe(params), "params": Path(params_path).name, "code_version": code,
                "rows": {"train": len(rows), "by_task": by_task, "videos": len({r.video for r in rows}),
                         "heldout_per_task": ecfg.rows_per_task, "never_seen": ["dark_event", "mixvid"]},
                "curve": curve, "final": curve[-1]["tasks"] if curve else None,
                "train_seconds": curve[-1]["train_seconds"] if curve else None,
                "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    return write_start(policy, out, manifest)


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


def _benchmark(path: str | Path | None) -> dict:
    path = Path(path) if path else repo_root() / "benchmarks" / "results" / "study.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no study benchmark results; run `python benchmarks/bench_study.py`")
    return json.loads(path.read_text())


def benchmark_table(path: str | Path | None = None) -> Any:
    """`seed_table` of the study benchmark's results (default `benchmarks/results/study.json`)."""

    return seed_table(_benchmark(path)["runs"])


CURVE_KEYS = ("reward", "frac_reward_zero_std", "entropy", "loss", *(f"reward/{t}" for t in TASKS))


def training_curve(policy: str | Path) -> list[dict]:
    """The logged curve of a trained arm, read from the metrics log beside its policy (`train/<stage>/final`):
    per logged step the reward (all tasks and per task), the fraction of groups with no reward spread, the entropy
    and the loss. The benchmark keeps it next to the held-out scores, so the reason behind a result stays readable
    after its run folders are gone."""

    log = StageDir(Path(policy).parent).metrics
    if not log.is_file():
        raise FileNotFoundError(f"{log}: no metrics log beside the policy {policy}")
    return [{"step": int(r["step"]), **{k: round(float(r[k]), 4) for k in CURVE_KEYS if k in r}}
            for r in read_jsonl(log) if any(k in r for k in CURVE_KEYS)]


CURVE_PANELS = (("reward/dark_event", "DarkEventInfer reward"), ("reward/mixvid", "MixVidQA reward"),
                ("reward", "reward, all tasks"), ("frac_reward_zero_std", "groups with no reward spread"),
                ("entropy", "entropy (nats / token)"))


def plot_curves(path: str | Path | None = None) -> Any:
    """The RL arms' training curves of the study benchmark, one line per seed (`grpo` solid, `no_proxy` dashed): do
    the proxy rewards rise, and how many groups give GRPO no signal at all (paper §3: a group whose completions all
    score the same has zero advantage)."""
    import matplotlib.pyplot as plt

    runs = [r for r in _benchmark(path)["runs"] if r["arm"] in ("grpo", "no_proxy")]
    if not any(r.get("curve") for r in runs):
        raise ValueError(f"{path or 'study.json'}: its runs hold no training curves (written by bench_study.py "
                         "since the curves were added); rerun `python benchmarks/bench_study.py`")
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(3.2 * len(CURVE_PANELS), 2.8), constrained_layout=True)
    colors = plt.get_cmap("tab10")
    for ax, (key, title) in zip(axes, CURVE_PANELS):
        for r in runs:
            pts = [(c["step"], c[key]) for c in r.get("curve", []) if key in c]
            if pts:
                ax.plot(*zip(*pts), color=colors(r["seed"] % 10), ls="-" if r["arm"] == "grpo" else "--", lw=1.5,
                        label=f"{r['arm']} seed {r['seed']}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    every_run = max(axes, key=lambda ax: len(ax.get_lines()))
    fig.legend(*every_run.get_legend_handles_labels(), loc="outside lower center", ncol=6, fontsize=8)
    return fig
