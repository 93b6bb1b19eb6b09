"""The paper's experiment in miniature (paper §3-§6): RL from an instruction-following policy, no SFT on the proxy
tasks, one format-gated reward routed per task, every task scored on held-out videos. `params/default.yaml` is this
study; notebook 03 and `benchmarks/bench_study.py` run it through the functions below, so both read their settings
from one params file.

1. `build_instruct`: the "instruct" starting policy, standing in for Qwen2.5-VL-7B-Instruct (`grpo_training.
   instruct_steps > 0`). Supervised pre-training of the tiny policy on single, unedited clips of half the training
   videos (captions, multiple choice, open-ended QA): it has never seen a blacked-out or interleaved video. Cached
   under `<repo>/<instruct_cache>/<instruct_key>`: the hash of its rows and every setting that shapes it, not the
   training seed, so like the paper's base checkpoint one instruct policy serves every seed and run.
2. `rl_rows`: the RL rows, from the other half of the training videos, `train_mix[task]` rows per task. The
   comparison arms change only the mix (`no_proxy_mix`: the proxy tasks' rows given to multiple choice and captions)
   or the learner (`sft_arm`: supervised steps on the reference answers of the GRPO rows).
3. `heldout_rows` and `task_scores`: every task scored on held-out rows under the grounding conditions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vvkit.schema import HEADLINE_METRIC, TASKS, Row, load_rows, save_rows

PROXY_TASKS = ("dark_event", "mixvid")
INSTRUCT_TASKS = ("mcq", "open_ended", "caption")  # single clips, no edits: what an instruct model already does
ARMS = ("start", "grpo", "no_proxy", "sft")
TRAINED_ARMS = ("grpo", "no_proxy", "sft")
STUDY_VERSION = "2"  # bump when the study's logic changes in a way the config does not show


# ---- which videos train what ------------------------------------------------------------------------------------------
def video_of(row: Row) -> str:
    """The source video a row is made from (the first clip of a MixVidQA pair)."""
    return str(row.meta.get("video_id") or (row.meta.get("video_ids") or [row.id])[0])


def pretraining_videos(row: Row) -> bool:
    """Train videos split in two halves by a stable hash: one half for the instruct stage, the other for RL, so RL
    prompts (and the MixVidQA pairs' first clips) come from videos the instruct policy never trained on."""
    return int(hashlib.sha256(video_of(row).encode()).hexdigest(), 16) % 2 == 0


def with_reasoning(rows: Sequence[Row], reasoning: str | None) -> list[Row]:
    """Copies whose supervised target thinks `reasoning` (`sft_target` reads `meta['reasoning']`); None = as is."""
    if reasoning is None:
        return list(rows)
    return [dataclasses.replace(r, meta={**r.meta, "reasoning": reasoning}) for r in rows]


def instruct_rows(train: Sequence[Row], reasoning: str | None) -> list[Row]:
    """The instruct stage's rows: captions and QA on single unedited clips of the pre-training half."""
    rows = [r for r in train if r.problem_type in INSTRUCT_TASKS and not r.edits and pretraining_videos(r)]
    return with_reasoning(rows, reasoning)


# ---- the instruct policy ------------------------------------------------------------------------------------------
def instruct_stages(total: int, stage: int) -> list[int]:
    """Steps of each supervised stage: `stage` at a time (the last stage takes the remainder)."""
    k = max(1, int(stage))
    return [k] * (int(total) // k) + ([int(total) % k] if int(total) % k else [])


def _portable(row: Row) -> dict:
    """A row as its content: each video by file name and size, not by folder, so the same data built in another run
    folder (toy videos are byte-identical between builds) finds the same cached policy."""
    d = dataclasses.asdict(row)
    d["video"] = [[Path(p).name, Path(p).stat().st_size if Path(p).exists() else None] for p in row.paths]
    return d


def instruct_key(cfg: Any, rows: Sequence[Row], steps: int | None = None) -> str:
    """Hash of what shapes the instruct policy after `steps` supervised steps (default: all of them): its rows, the
    frame policy, the SFT settings, the instruct seed, the base policy and the code versions. Not `cfg.seed`."""
    from vvkit.prompts import PROMPT_VERSION
    from vvkit.synth.build import SYNTH_VERSION

    d = {"rows": hashlib.sha256("\n".join(json.dumps(_portable(r), sort_keys=True, default=str)
                                          for r in rows).encode()).hexdigest(),
         "steps": cfg.instruct_steps if steps is None else steps, "stage_steps": cfg.instruct_stage_steps,
         "frames": cfg.frames, "lr": cfg.sft_lr, "batch": cfg.sft_batch_size, "answer": cfg.sft_answer, "reasoning": cfg.sft_reasoning,
         "seed": cfg.instruct_seed, "policy": cfg.policy or "tiny", "prompt_version": PROMPT_VERSION,
         "synth_version": SYNTH_VERSION, "study_version": STUDY_VERSION}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def instruct_folder(cfg: Any, key: str) -> Path:
    """`<repo>/<instruct_cache>/<key>` (an absolute `instruct_cache` is taken as it is)."""
    from vvkit.rundir import repo_root

    root = Path(cfg.instruct_cache)
    return (root if root.is_absolute() else repo_root() / root) / key


def sft_config(cfg: Any, run_dir: Path, policy: Path, rows_path: Path, steps: int, batch: int, seed: int) -> Any:
    """A TrainConfig for one supervised stage (`vvkit.sft.warm_start`) with `cfg`'s SFT and device settings."""
    from vvkit.grpo_config import TrainConfig

    return TrainConfig(run_dir=str(run_dir), seed=seed, frames=cfg.frames, policy=str(policy),
                       train_data=str(rows_path), rewards=cfg.rewards, sft_steps=steps, sft_lr=cfg.sft_lr,
                       sft_batch_size=batch, sft_answer=cfg.sft_answer, use_cpu=cfg.use_cpu, bf16=cfg.bf16,
                       report_to="none", save_strategy="no", disable_tqdm=cfg.disable_tqdm)


def build_instruct(cfg: Any, train: Sequence[Row]) -> Path:
    """The cached instruct policy: supervised stages of `instruct_stage_steps` steps on `instruct_rows(train)`, each
    continuing from the one before with a new data order (stage i uses seed instruct_seed + i), each cached under
    the key of its first i stages, so a longer schedule reuses a shorter one. Built by one process."""
    from vvkit.model import build_tiny_policy
    from vvkit.rundir import RunDir
    from vvkit.sft import warm_start

    if cfg.instruct_steps <= 0:
        raise ValueError("grpo_training.instruct_steps must be > 0 for an instruct start policy")
    rows = instruct_rows(train, cfg.sft_reasoning)
    if not rows:
        raise ValueError("no instruct rows: the training rows hold no unedited mcq / open_ended / caption rows; "
                         "add them to data_synthesis.task_mix")
    policy, done = None, 0
    for i, steps in enumerate(instruct_stages(cfg.instruct_steps, cfg.instruct_stage_steps)):
        done += steps
        folder = instruct_folder(cfg, instruct_key(cfg, rows, done))
        final = RunDir(folder).final("warm_start")
        if not (final / "warm_start.json").is_file() and cfg.world_size > 1:
            raise RuntimeError(f"the instruct policy {folder} is not built yet; build it with one process first "
                               "(notebook 03, or `python -m vvkit.train --params ...` without torchrun)")
        if policy is None:
            policy = Path(cfg.policy) if cfg.policy else build_tiny_policy(folder / "tiny", seed=cfg.instruct_seed)
        rows_path = folder / "instruct_rows.jsonl"
        if not rows_path.exists():
            save_rows(rows, rows_path)
        print(f"[vvkit] instruct stage {i + 1}: steps {done - steps}-{done} in {folder}", flush=True)
        policy = warm_start(sft_config(cfg, folder, policy, rows_path, steps, cfg.sft_batch_size,
                                       cfg.instruct_seed + i))
    return policy


# ---- the RL rows and the arms ---------------------------------------------------------------------------------------
def no_proxy_mix(mix: dict[str, int]) -> dict[str, int]:
    """The no-proxy control's mix (paper §6's "VideoQA+Caption" ablation at equal size): the DarkEventInfer and
    MixVidQA rows given half to extra multiple-choice and half to extra caption rows."""
    counts = {t: int(mix.get(t, 0)) for t in TASKS}
    freed = sum(counts[t] for t in PROXY_TASKS)
    counts["mcq"] += freed - freed // 2
    counts["caption"] += freed // 2
    return {**counts, **{t: 0 for t in PROXY_TASKS}}


def mixed_rows(rows: Sequence[Row], mix: dict[str, int], seed: int) -> list[Row]:
    """`mix[task]` rows of each task, drawn and shuffled by `seed`; raises naming the task the rows lack."""
    pool = {t: [r for r in rows if r.problem_type == t] for t in TASKS}
    unknown = sorted(set(mix) - set(TASKS))
    if unknown:
        raise ValueError(f"grpo_training.train_mix: unknown task(s) {unknown}; tasks are {list(TASKS)}")
    rng = np.random.default_rng([seed, 11])
    order = {t: [pool[t][j] for j in rng.permutation(len(pool[t]))] for t in TASKS}
    counts = {t: int(mix.get(t, 0)) for t in TASKS}
    short = {t: (n, len(order[t])) for t, n in counts.items() if n > len(order[t])}
    if short:
        raise ValueError(f"grpo_training.train_mix asks for more rows than there are: (wanted, available) {short}; "
                         "raise data_synthesis.num_videos or samples_per_video, or lower train_mix")
    picked = [r for t in TASKS for r in order[t][: counts[t]]]
    return [picked[j] for j in rng.permutation(len(picked))]


def rl_rows(cfg: Any, train: Sequence[Row]) -> list[Row]:
    """GRPO's rows: with an instruct start, only the RL half of the videos; then `train_mix` rows per task."""
    rows = [r for r in train if not pretraining_videos(r)] if cfg.instruct_steps > 0 else list(train)
    return mixed_rows(rows, cfg.train_mix, cfg.seed) if cfg.train_mix else rows


def sft_arm(cfg: Any, start: Path, train: Sequence[Row]) -> Path:
    """The SFT control: supervised steps on the reference answers of the GRPO rows (`rl_rows`), as many optimizer
    steps as GRPO, each on as many sequences as a GRPO step's completions."""
    out = Path(cfg.run_dir)
    rows_path = out / "sft_rows.jsonl"
    save_rows(with_reasoning(rl_rows(cfg, train), cfg.sft_reasoning), rows_path)
    batch = int(cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps)
    from vvkit.sft import warm_start

    return warm_start(sft_config(cfg, out, start, rows_path, int(cfg.max_steps), batch, cfg.seed))


BOOKKEEPING = {"report_to": "none", "save_strategy": "no", "logging_steps": 10, "save_completions": 4,
               "disable_tqdm": True}  # the benchmark's arms: no checkpoints, no TensorBoard


def build_data(params: dict, root: str | Path) -> Path:
    """The study's dataset from the params' `data_synthesis` section, built (or reused by config hash) in `root`."""
    from vvkit.config import stage_config
    from vvkit.synth.build import build_dataset

    return Path(build_dataset(stage_config(params, "data_synthesis", run_dir=str(root)))["out_dir"])


def arm_config(params: dict, arm: str, seed: int, run_dir: str | Path, data: str | Path,
               overrides: dict | None = None) -> Any:
    """The TrainConfig of one trained arm and seed: the params' `grpo_training` with `seed` as run.seed, the rows of
    `data`, and for `no_proxy` the mix of `no_proxy_mix`; data and the instruct policy do not depend on `seed`."""
    import copy

    from vvkit.config import stage_config

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
    from vvkit.train import load_split, start_policy, train

    if arm == "sft":
        rows = load_split(cfg, "train")
        return sft_arm(cfg, start_policy(cfg, rows), rows)
    return train(cfg)


# ---- evaluation ---------------------------------------------------------------------------------------------------
def heldout_rows(test: Sequence[Row], per_task: int | None) -> list[Row]:
    """The first `per_task` held-out rows of every task present (None = all rows); test videos are never trained on."""
    if per_task is None:
        return list(test)
    out: list[Row] = []
    for t in TASKS:
        got = [r for r in test if r.problem_type == t]
        if got and len(got) < per_task:
            raise ValueError(f"only {len(got)} held-out {t} rows for analysis.rows_per_task={per_task}; raise "
                             "data_synthesis.num_videos")
        out += got[:per_task]
    return out


def task_score(task: str, metrics: dict) -> float:
    """The study's number per task: DarkEventInfer mean judge score (0-2), MixVidQA / multiple-choice accuracy,
    open-ended mean judge verdict, caption AutoDQ F1."""
    return float(metrics[HEADLINE_METRIC[task]])


def task_scores(policy: Any, rows: Sequence[Row], ecfg: Any, conditions: Sequence[str] = ("video", "blank"),
                out_dir: Path | None = None, judge: Any = None) -> dict[str, dict[str, float]]:
    """{task: {condition: score}} for every task present, evaluated under each condition ('video' is reported as
    'score', with its format rate); with `out_dir`, predictions land in `<out_dir>/<condition>/` (resumable)."""
    from vvkit.evaluate import evaluate

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
    import pandas as pd

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
    from vvkit.rundir import repo_root

    path = Path(path) if path else repo_root() / "benchmarks" / "results" / "study.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no study benchmark results; run `python benchmarks/bench_study.py`")
    return seed_table(json.loads(path.read_text())["runs"])
