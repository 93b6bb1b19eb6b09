"""The instruct start: the stand-in for Qwen2.5-VL-7B-Instruct in the offline study, a policy supervised on single,
unedited clips (captions, multiple choice, open-ended QA) that has never seen a blacked-out or interleaved video.
Either shipped (`instruct_start`, `vvkit.shipped_start`) or built for the run's data (`instruct_steps > 0`): half
the training videos, cached under `<repo>/<instruct_cache>/<instruct_key>` (the hash of its rows and every setting
that shapes it, not the training seed), so like the paper's base checkpoint one instruct policy serves every seed
and run. `train_instruct` runs the cached stages for both; `start_policy` picks the policy GRPO starts from."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from vvkit.data import instruct_rows, load_split
from vvkit.dist import resolve_policy
from vvkit.grpo_config import TrainConfig
from vvkit.model import build_tiny_policy
from vvkit.prompts import PROMPT_VERSION
from vvkit.rundir import WARM_START_FILE, RunDir, repo_root
from vvkit.schema import Row, save_rows
from vvkit.sft import warm_start
from vvkit.synth.build import SYNTH_VERSION
from vvkit.shipped_start import shipped_start

STUDY_VERSION = "2"  # bump when the instruct stage's logic changes in a way the config does not show


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

    d = {"rows": hashlib.sha256("\n".join(json.dumps(_portable(r), sort_keys=True, default=str)
                                          for r in rows).encode()).hexdigest(),
         "steps": cfg.instruct_steps if steps is None else steps, "stage_steps": cfg.instruct_stage_steps,
         "frames": cfg.frames, "lr": cfg.sft_lr, "batch": cfg.sft_batch_size, "answer": cfg.sft_answer, "reasoning": cfg.sft_reasoning,
         "seed": cfg.instruct_seed, "policy": cfg.policy or "tiny", "prompt_version": PROMPT_VERSION,
         "synth_version": SYNTH_VERSION, "study_version": STUDY_VERSION}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def instruct_folder(cfg: Any, key: str) -> Path:
    """`<repo>/<instruct_cache>/<key>` (an absolute `instruct_cache` is taken as it is)."""

    root = Path(cfg.instruct_cache)
    return (root if root.is_absolute() else repo_root() / root) / key


def sft_config(cfg: Any, run_dir: Path, policy: Path, rows_path: Path, steps: int, batch: int, seed: int) -> Any:
    """A TrainConfig for one supervised stage (`vvkit.sft.warm_start`) with `cfg`'s SFT and device settings."""

    return TrainConfig(run_dir=str(run_dir), seed=seed, frames=cfg.frames, policy=str(policy),
                       train_data=str(rows_path), rewards=cfg.rewards, sft_steps=steps, sft_lr=cfg.sft_lr,
                       sft_batch_size=batch, sft_answer=cfg.sft_answer, use_cpu=cfg.use_cpu, bf16=cfg.bf16,
                       report_to="none", save_strategy="no", disable_tqdm=cfg.disable_tqdm)


def train_instruct(cfg: Any, rows: Sequence[Row], on_stage: Callable[[int, Path], None] | None = None) -> Path:
    """Supervised stages of `instruct_stage_steps` steps on `rows`, each continuing from the one before with a new
    data order (stage i uses seed instruct_seed + i), each cached under the key of its first i stages, so a longer
    schedule reuses a shorter one and a killed build resumes at its last finished stage. `on_stage(steps, policy)`
    runs after every stage (the shipped start's learning curve). Built by one process."""
    if cfg.instruct_steps <= 0:
        raise ValueError("grpo_training.instruct_steps must be > 0 for an instruct start policy")
    if not rows:
        raise ValueError("no instruct rows: the training rows hold no unedited mcq / open_ended / caption rows; "
                         "add them to data_synthesis.task_mix")
    policy, done = None, 0
    for i, steps in enumerate(instruct_stages(cfg.instruct_steps, cfg.instruct_stage_steps)):
        done += steps
        folder = instruct_folder(cfg, instruct_key(cfg, rows, done))
        final = RunDir(folder).final("warm_start")
        if not (final / WARM_START_FILE).is_file() and cfg.world_size > 1:
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
        if on_stage is not None:
            on_stage(done, policy)
    return policy


def start_policy(cfg: Any, rows: Sequence[Row] | None = None) -> Path:
    """The policy GRPO starts from: the shipped instruct policy (`instruct_start`, checked against its manifest), the
    cached instruct policy (instruct_steps > 0), the SFT warm start (sft_steps > 0), or `resolve_policy`; the last
    three are built here when missing."""
    if cfg.instruct_start:
        return shipped_start(cfg.instruct_start)
    if cfg.instruct_steps > 0:
        train = load_split(cfg, "train") if rows is None else rows
        return train_instruct(cfg, instruct_rows(train, cfg.sft_reasoning))
    return warm_start(cfg) if cfg.sft_steps > 0 else resolve_policy(cfg)
