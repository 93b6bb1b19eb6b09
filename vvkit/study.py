"""The paper's experiment in miniature (paper §3-§6): RL from an instruction-following policy, no SFT on the proxy
tasks, one format-gated reward routed per task, every task scored on held-out videos.

1. `build_instruct`: the "instruct" starting policy, standing in for Qwen2.5-VL-7B-Instruct. Supervised pre-training
   of the tiny policy on single, unedited toy clips only (captions, multiple choice, open-ended QA); it has never seen
   a blacked-out or interleaved video. Built once and cached under `<root>/instruct/<instruct_key>` (the hash of every
   setting that shapes it; the study seed is not one of them: like the paper's base checkpoint, one instruct policy
   serves every seed).
2. `arm_rows`: the data of each arm from the same RL pool (train videos the instruct stage never saw):
   `grpo` is the paper's mix (DarkEventInfer, MixVidQA, multiple choice, open-ended QA, captions); `no_proxy` swaps
   the DarkEventInfer and MixVidQA rows for as many multiple-choice and caption rows; `sft` trains on the reference
   answers of the `grpo` rows.
3. `run_arm` trains an arm through `vvkit.train` (`train` for GRPO, `warm_start` for SFT) and `task_scores`
   evaluates a policy through `vvkit.evaluate` on held-out rows under the grounding conditions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vvkit.schema import Row, load_rows, save_rows

TASKS = ("dark_event", "mixvid", "mcq", "open_ended", "caption")
PROXY_TASKS = ("dark_event", "mixvid")
INSTRUCT_TASKS = ("mcq", "open_ended", "caption")  # single clips, no edits: what an instruct model already does
ARMS = ("start", "grpo", "no_proxy", "sft")
TRAINED_ARMS = ("grpo", "no_proxy", "sft")
STUDY_VERSION = "1"  # bump when the study's logic changes in a way the config does not show
FRAMES = {"nframes": 8, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "decord"}


@dataclass
class StudyConfig:
    """Every setting of the study; `instruct_*`, data and policy settings shape the cached instruct policy."""

    root: str = "runs/study"
    seed: int = 0  # the study seed: which RL rows, GRPO / SFT sampling
    frames: dict = field(default_factory=lambda: dict(FRAMES))
    # ---- the toy world (one dataset for every seed; test videos are never trained on) ----
    data_seed: int = 0
    num_videos: int = 1600
    test_fraction: float = 0.25
    samples_per_video: int = 3
    size: int = 56
    fps: float = 8.0
    min_duration: float = 4.0
    max_duration: float = 6.0
    # ---- the instruct starting policy ----
    policy_size: str = "tiny"
    instruct_steps: int = 800
    instruct_stage_steps: int = 400  # built (and cached) 400 steps at a time
    instruct_lr: float = 1e-3
    instruct_batch_size: int = 32
    reasoning: str = "I watch the video."  # the think text of every supervised target
    # ---- RL rows per task (the grpo arm's mix; no_proxy and sft derive from it) ----
    mix: dict = field(default_factory=lambda: {"dark_event": 96, "mixvid": 96, "mcq": 48, "open_ended": 32,
                                               "caption": 48})
    # ---- GRPO (paper §5 at toy scale) ----
    learning_rate: float = 2e-4
    beta: float = 0.04
    num_generations: int = 8
    prompts_per_step: int = 8
    max_steps: int = 150
    temperature: float = 1.0
    max_completion_length: int = 40
    loss_type: str = "dapo"
    difficulty_filter_k: int = 0
    # ---- SFT arm: same rows, same optimizer steps, a batch of prompts_per_step x num_generations sequences ----
    sft_lr: float = 1e-3
    # ---- evaluation ----
    eval_rows_per_task: int = 100
    conditions: tuple = ("video", "blank")
    eval_batch_size: int = 100


# ---- the instruct policy -------------------------------------------------------------------------------------------
INSTRUCT_KEYS = ("frames", "data_seed", "num_videos", "test_fraction", "samples_per_video", "size", "fps",
                 "min_duration", "max_duration", "policy_size", "instruct_steps", "instruct_stage_steps", "instruct_lr", "instruct_batch_size",
                 "reasoning")


def instruct_key(cfg: StudyConfig) -> str:
    """Hash of every setting that shapes the instruct policy (not `seed`: one instruct policy for every seed)."""
    from vvkit.prompts import PROMPT_VERSION
    from vvkit.synth.build import SYNTH_VERSION

    d = {k: getattr(cfg, k) for k in INSTRUCT_KEYS}
    d.update(prompt_version=PROMPT_VERSION, synth_version=SYNTH_VERSION, study_version=STUDY_VERSION)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def synth_config(cfg: StudyConfig) -> Any:
    """The toy-world dataset of the study: one shape per video, events whose effect stays visible ('study'
    preset), every task drawn with equal weight; the study then picks rows per task from it."""
    from vvkit.config import SynthConfig

    return SynthConfig(run_dir=str(Path(cfg.root) / "data"), seed=cfg.data_seed, frames=cfg.frames,
                       num_videos=cfg.num_videos, test_fraction=cfg.test_fraction, difficulty="study",
                       task_mix={t: 1.0 for t in TASKS}, samples_per_video=cfg.samples_per_video, size=cfg.size,
                       fps=cfg.fps, min_duration=cfg.min_duration, max_duration=cfg.max_duration, out_dir="data")


def build_data(cfg: StudyConfig) -> Path:
    """Build (or reuse, by config hash) the study's dataset; returns its folder (train.jsonl, test.jsonl)."""
    from vvkit.synth.build import build_dataset

    return Path(build_dataset(synth_config(cfg))["out_dir"])


def video_of(row: Row) -> str:
    """The source video a row is made from (the first clip of a MixVidQA pair)."""
    return str(row.meta.get("video_id") or (row.meta.get("video_ids") or [row.id])[0])


def pretraining_videos(row: Row) -> bool:
    """Train videos split in two halves by a stable hash: one half for the instruct stage, the other for RL, so RL
    prompts (and the MixVidQA pairs' first clips) come from videos the instruct policy never trained on."""
    return int(hashlib.sha256(video_of(row).encode()).hexdigest(), 16) % 2 == 0


def with_reasoning(rows: Sequence[Row], reasoning: str) -> list[Row]:
    """Copies whose supervised target thinks `reasoning` (`sft_target` reads `meta['reasoning']`)."""
    return [dataclasses.replace(r, meta={**r.meta, "reasoning": reasoning}) for r in rows]


def instruct_rows(train: Sequence[Row], reasoning: str) -> list[Row]:
    """The instruct stage's rows: captions and QA on single unedited clips of the pre-training half."""
    rows = [r for r in train if r.problem_type in INSTRUCT_TASKS and not r.edits and pretraining_videos(r)]
    return with_reasoning(rows, reasoning)


REWARDS = {"reward_funcs": ["accuracy"], "gate": "multiply", "open_ended_metric": "judge"}  # paper §4, one reward


def train_config_class() -> type:
    """vvkit's TrainConfig (TRL's GRPOConfig plus vvkit's fields)."""
    import vvkit.config

    if hasattr(vvkit.config, "TrainConfig"):
        return vvkit.config.TrainConfig
    from vvkit.train_config import TrainConfig

    return TrainConfig


def _train_config(**kw: Any) -> Any:
    """A TrainConfig with the study's bookkeeping defaults and the single format-gated accuracy reward routed per
    task (paper §4), scored by the offline judge, open-ended answers by the judge as in evaluation."""
    cls = train_config_class()
    names = {f.name for f in dataclasses.fields(cls)}
    base = dict(sft_answer="text", lr_scheduler_type="constant", save_strategy="no", logging_steps=10,
                report_to="none", disable_tqdm=True, save_completions=4)
    if "rewards" in names:
        base["rewards"] = dict(REWARDS)
    else:
        base.update(reward_funcs=REWARDS["reward_funcs"], gate=REWARDS["gate"],
                    reward_settings={"open_ended_metric": REWARDS["open_ended_metric"]})
    return cls(**{**base, **kw})


def instruct_stages(cfg: StudyConfig) -> list[int]:
    """Steps of each supervised stage: `instruct_stage_steps` at a time (the last stage takes the remainder)."""
    n, k = int(cfg.instruct_steps), max(1, int(cfg.instruct_stage_steps))
    return [k] * (n // k) + ([n % k] if n % k else [])


def build_instruct(cfg: StudyConfig, data_dir: Path | None = None) -> Path:
    """The cached instruct policy: supervised stages of `instruct_stage_steps` steps, each continuing from the one
    before with a new data order (stage i uses seed data_seed + i), each cached at
    `<root>/instruct/<key of the first i stages>/train/warm_start/policy`, so a longer schedule reuses a shorter one."""
    from vvkit.model import build_tiny_policy
    from vvkit.train import warm_start

    data_dir = data_dir or build_data(cfg)
    policy = None
    done = 0
    for i, steps in enumerate(instruct_stages(cfg)):
        done += steps
        folder = Path(cfg.root) / "instruct" / instruct_key(dataclasses.replace(cfg, instruct_steps=done))
        if policy is None:
            policy = build_tiny_policy(folder / "tiny", seed=cfg.data_seed, size=cfg.policy_size)
        rows_path = folder / "instruct_rows.jsonl"
        if not rows_path.exists():
            save_rows(instruct_rows(load_rows(data_dir / "train.jsonl"), cfg.reasoning), rows_path)
        tcfg = _train_config(run_dir=str(folder), seed=cfg.data_seed + i, frames=cfg.frames, policy=str(policy),
                             train_data=str(rows_path), sft_steps=steps, sft_lr=cfg.instruct_lr,
                             sft_batch_size=cfg.instruct_batch_size)
        policy = warm_start(tcfg)
    if policy is None:
        raise ValueError("instruct_steps must be > 0: the study starts from a supervised instruct policy")
    return policy


# ---- the arms' data --------------------------------------------------------------------------------------------------
def rl_pool(train: Sequence[Row]) -> dict[str, list[Row]]:
    """RL candidate rows per task: train rows of the RL half of the videos (every task)."""
    pool: dict[str, list[Row]] = {t: [] for t in TASKS}
    for r in train:
        if not pretraining_videos(r):
            pool[r.problem_type].append(r)
    return pool


def arm_rows(pool: dict[str, list[Row]], mix: dict[str, int], arm: str, seed: int) -> list[Row]:
    """The training rows of `arm`, shuffled by `seed`. grpo and sft: `mix[task]` rows of each task; no_proxy: the
    same total, the proxy tasks' share given half to extra multiple-choice and half to extra caption rows (paper
    §6's "VideoQA+Caption" ablation at equal size). Raises when the pool lacks rows, naming the task."""
    if arm not in TRAINED_ARMS:
        raise ValueError(f"arm {arm!r} unknown; trained arms are {TRAINED_ARMS}")
    rng = np.random.default_rng([seed, 11])
    order = {t: [pool[t][j] for j in rng.permutation(len(pool[t]))] for t in TASKS}
    counts = {t: int(mix.get(t, 0)) for t in TASKS}  # sft: the grpo arm's rows (same seed, same order)
    if arm == "no_proxy":
        freed = sum(counts[t] for t in PROXY_TASKS)
        counts["mcq"] += freed - freed // 2
        counts["caption"] += freed // 2
        for t in PROXY_TASKS:
            counts[t] = 0
    short = {t: (n, len(order[t])) for t, n in counts.items() if n > len(order[t])}
    if short:
        raise ValueError(f"RL pool too small for arm {arm!r}: (wanted, available) rows {short}; raise num_videos or "
                         "samples_per_video, or lower mix")
    rows = [r for t in TASKS for r in order[t][: counts[t]]]
    return [rows[j] for j in rng.permutation(len(rows))]


def heldout_rows(test: Sequence[Row], per_task: int) -> list[Row]:
    """The first `per_task` held-out rows of every task (test videos are disjoint from train videos)."""
    out: list[Row] = []
    for t in TASKS:
        got = [r for r in test if r.problem_type == t][:per_task]
        if len(got) < per_task:
            raise ValueError(f"only {len(got)} held-out {t} rows for eval_rows_per_task={per_task}; raise num_videos")
        out += got
    return out


# ---- training the arms -----------------------------------------------------------------------------------------------
def arm_dir(cfg: StudyConfig, arm: str) -> Path:
    return Path(cfg.root) / f"seed{cfg.seed}" / arm


def arm_train_config(cfg: StudyConfig, arm: str, instruct: Path, rows_path: Path) -> Any:
    """The TrainConfig of a trained arm: GRPO from the instruct policy (grpo, no_proxy), or SFT from it on the same
    rows for as many optimizer steps, each on prompts_per_step x num_generations sequences (sft)."""
    out = arm_dir(cfg, arm)
    common = dict(run_dir=str(out), seed=cfg.seed, frames=cfg.frames, policy=str(instruct), train_data=str(rows_path))
    if arm == "sft":
        return _train_config(**common, sft_steps=cfg.max_steps, sft_lr=cfg.sft_lr,
                             sft_batch_size=cfg.prompts_per_step * cfg.num_generations)
    return _train_config(**common, output_dir=str(out / "train" / "grpo"), sft_steps=0,
                         learning_rate=cfg.learning_rate, beta=cfg.beta, loss_type=cfg.loss_type,
                         num_generations=cfg.num_generations, temperature=cfg.temperature,
                         max_completion_length=cfg.max_completion_length,
                         per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
                         max_steps=cfg.max_steps, difficulty_filter_k=cfg.difficulty_filter_k)


def run_arm(cfg: StudyConfig, arm: str, instruct: Path, pool: dict[str, list[Row]]) -> tuple[Path, float]:
    """Train one arm; returns (policy folder, training seconds)."""
    from vvkit.train import train, warm_start

    rows = with_reasoning(arm_rows(pool, cfg.mix, arm, cfg.seed), cfg.reasoning)
    rows_path = arm_dir(cfg, arm) / "rows.jsonl"
    save_rows(rows, rows_path)
    tcfg = arm_train_config(cfg, arm, instruct, rows_path)
    t0 = time.perf_counter()
    policy = warm_start(tcfg) if arm == "sft" else train(tcfg)
    return policy, time.perf_counter() - t0


# ---- scores ----------------------------------------------------------------------------------------------------------
def task_score(task: str, metrics: dict) -> float:
    """The study's number per task: DarkEventInfer mean judge score (0-2), MixVidQA / multiple-choice accuracy,
    open-ended mean judge verdict, caption AutoDQ F1."""
    key = {"dark_event": "score_mean", "mixvid": "accuracy", "mcq": "accuracy", "open_ended": "score",
           "caption": "f1"}[task]
    return float(metrics[key])


def eval_config(cfg: StudyConfig) -> Any:
    """Greedy evaluation scored like the training reward: offline judge, open-ended answers by the judge."""
    from vvkit import evaluate as E

    kw = dict(frames=cfg.frames, batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_completion_length + 8,
              seed=cfg.seed, progress=False)
    names = {f.name for f in dataclasses.fields(E.EvalConfig)}
    if "rewards" in names:
        kw["rewards"] = dict(REWARDS)
    else:
        kw.update(judge="offline", open_ended_metric=REWARDS["open_ended_metric"])
    return E.EvalConfig(**kw)


def task_scores(policy: Any, rows: Sequence[Row], cfg: StudyConfig, out_dir: Path | None = None,
                judge: Any = None) -> dict[str, dict[str, float]]:
    """{task: {condition name: score}} for every task present, evaluated greedily under each of `cfg.conditions`
    ('video' is reported as 'score'); with `out_dir`, predictions land in `<out_dir>/<condition>/`."""
    from vvkit.evaluate import evaluate

    ecfg = eval_config(cfg)
    out: dict[str, dict[str, float]] = {}
    for cond in cfg.conditions:
        res = evaluate(policy, rows, ecfg, None if out_dir is None else Path(out_dir) / cond, condition=cond,
                       judge=judge)
        for task, m in res.metrics.items():
            if task != "overall":
                out.setdefault(task, {})["score" if cond == "video" else cond] = task_score(task, m)
                if cond == "video":
                    out[task]["format_rate"] = float(m["format_rate"])
    return out


def run_study(cfg: StudyConfig, arms: Sequence[str] = ARMS, log: Any = print) -> list[dict]:
    """Data, instruct policy, then each arm trained and every task scored on held-out rows; one record per arm:
    {"seed", "arm", "tasks": {task: {"score", "blank", ...}}, "train_seconds"}."""
    from vvkit.evaluate import make_judge

    data = build_data(cfg)
    t0 = time.perf_counter()
    instruct = build_instruct(cfg, data)
    instruct_s = time.perf_counter() - t0
    pool = rl_pool(load_rows(data / "train.jsonl"))
    test = heldout_rows(load_rows(data / "test.jsonl"), cfg.eval_rows_per_task)
    judge = make_judge(eval_config(cfg))
    records = []
    for arm in arms:
        if arm == "start":
            policy, seconds = instruct, instruct_s
        else:
            policy, seconds = run_arm(cfg, arm, instruct, pool)
        t1 = time.perf_counter()
        tasks = task_scores(str(policy), test, cfg, arm_dir(cfg, arm) / "eval", judge)
        rec = {"seed": cfg.seed, "arm": arm, "tasks": tasks, "train_seconds": round(seconds, 1),
               "eval_seconds": round(time.perf_counter() - t1, 1), "policy": str(policy)}
        records.append(rec)
        log(f"[study] seed {cfg.seed} {arm}: " + ", ".join(
            f"{t} {v['score']:.3f}/{v.get('blank', float('nan')):.3f}" for t, v in tasks.items())
            + f" (train {seconds:.0f} s)")
    return records
