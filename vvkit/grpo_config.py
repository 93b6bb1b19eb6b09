"""`TrainConfig`: notebook 03's config, TRL's `GRPOConfig` plus vvkit's fields (frames, data, warm start, T-GRPO,
the difficulty filter). Every GRPOConfig field stays settable from `grpo_training:`; the rewards come from the shared
`rewards` section (see `vvkit.config.stage_config`), so training and evaluation score the same way.

TRL counts `per_device_train_batch_size` in completions, so prompts per optimizer step =
per_device_train_batch_size x gradient_accumulation_steps x processes / num_generations (`prompts_per_step`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig

from vvkit.config import ConfigError, RewardConfig, _f, from_dict

SFT_ANSWERS = ("letter", "text")


@dataclass
class TrainConfig(GRPOConfig):
    """GRPO on video (paper §5): TRL's GRPOConfig, the frame policy, rewards, data and vvkit's options."""

    # ---- shared keys (every stage receives them) ----
    run_dir: str = _f("runs/interactive", "Run folder; outputs go to <run_dir>/train/{warm_start,grpo}.")
    frames: dict = _f({}, "FramePolicy fields for training videos (the shared `frames` section).")
    policy: str | None = _f(None, "Starting policy folder; None = the tiny offline policy at <run_dir>/policy/tiny.")
    rewards: dict = _f({}, "The resolved shared `rewards` section (RewardConfig fields); a `rewards:` mapping inside "
                           "grpo_training overrides single keys for training only.")
    # ---- data ----
    train_data: str | None = _f(None, "Training rows (JSONL); None = <run_dir>/data/train.jsonl.")
    eval_data: str | None = _f(None, "Held-out rows for TRL's eval loop (used when eval_strategy != 'no'); "
                                     "None = <run_dir>/data/test.jsonl.")
    max_train_rows: int | None = _f(None, "Use at most this many training rows (None = all).")
    # ---- model options ----
    lora: dict | None = _f(None, "peft LoraConfig fields (e.g. {r: 8, lora_alpha: 16, target_modules: "
                                 "[q_proj, v_proj]}); None = full fine-tuning.")
    freeze_vision: bool = _f(False, "Freeze the vision tower (and its merger); only the language model learns.")
    attn_implementation: str = _f("sdpa", "Attention kernel, passed to transformers: sdpa, eager, flash_attention_2 (falls back to sdpa, with a printed line, without flash-attn or 16-bit weights), or any name transformers knows.")
    # ---- T-GRPO (Video-R1 temporal contrast) ----
    tgrpo: bool = _f(False, "T-GRPO: also sample on frame-shuffled clips and reward correct ordered answers "
                            "when ordered accuracy >= tgrpo_ratio x shuffled accuracy (Video-R1).")
    tgrpo_alpha: float = _f(0.3, "T-GRPO bonus added to each correct ordered completion (Video-R1: 0.3).")
    tgrpo_ratio: float = _f(1.0, "T-GRPO ratio (Video-R1 code: 0.8; its maintainers say 1.0 was intended).")
    tgrpo_reward: str | None = _f(None, "Reward measuring correctness for T-GRPO; None = the first reward_funcs.")
    # ---- difficulty filter (paper §3) ----
    difficulty_filter_k: int = _f(0, "Before RL, sample k completions per row and drop rows where all k are "
                                     "correct (paper: k=5 at T=1.0); 0 = off.")
    difficulty_filter_temperature: float = _f(1.0, "Sampling temperature of the difficulty filter.")
    difficulty_caption_spread: float = _f(0.2, "Caption rows: keep only when the population standard deviation of "
                                               "the k samples' AutoDQ F1 is >= this (paper: 0.2, called a variance; "
                                               "see vvkit.difficulty for why std); 0 = keep every caption.")
    # ---- instruct start (the study of params/default.yaml; paper §5 starts RL from an instruct checkpoint) ----
    instruct_start: str | None = _f(None, "A shipped instruct policy folder with its manifest (relative to the "
                                    "repository; built by tools/build_start.py): RL starts from it and every training "
                                    "video goes to RL. Excludes instruct_steps and sft_steps.")
    instruct_steps: int = _f(0, "Supervised 'instruct' stage before RL: sft_* settings on captions and QA of single "
                                "unedited clips of half the training videos (RL trains on the other half); cached "
                                "by content hash under instruct_cache (vvkit.study). 0 = off.")
    instruct_stage_steps: int = _f(400, "The instruct stage is built and cached this many steps at a time.")
    instruct_seed: int = _f(0, "Seed of the instruct stage (not run.seed: one instruct policy serves every seed).")
    instruct_cache: str = _f("runs/cache/instruct", "Cache folder of instruct policies (relative to the repository).")
    train_mix: dict | None = _f(None, "GRPO rows per task, e.g. {dark_event: 96, mixvid: 96, mcq: 48}, drawn by "
                                      "seed from the training rows; None = every row.")
    sft_reasoning: str | None = _f(None, "Think text of every supervised target (instruct stage, warm start, SFT "
                                         "control); None = a template per task (vvkit.sft.sft_target).")
    # ---- SFT warm start (not in the paper; Video-R1 does an SFT cold start) ----
    sft_steps: int = _f(0, "SFT warm-start steps on template reasoning before RL; 0 = start RL directly.")
    sft_lr: float = _f(1e-3, "SFT warm-start learning rate (1e-3 suits the tiny policy; far lower for 7B).")
    sft_batch_size: int = _f(8, "SFT warm-start rows per step.")
    sft_answer: str = _f("letter", "Warm-start answer to multiple choice: 'letter' (B) or 'text' (the option's "
                                   "words, e.g. red, which the parser maps to the letter, so RL need not learn "
                                   "the word-to-letter lookup).")
    # ---- logging ----
    save_completions: int = _f(8, "Completions per step written to <output_dir>/completions.jsonl (0 = none).")

    # ---- GRPOConfig / TrainingArguments defaults that differ for vvkit ----
    output_dir: str | None = _f(None, "Checkpoints and logs; None = <run_dir>/train/grpo.")
    bf16: bool | None = _f(None, "bf16 mixed precision; None = on when a bf16-capable GPU is present.")
    use_cpu: bool | None = _f(None, "Train on CPU; None = on when no GPU is present.")
    activation_checkpointing: bool | None = _f(None, "Recompute activations in backward (on for 7B); None = off, "
                                                     "unless the deprecated alias gradient_checkpointing is set.")
    gradient_checkpointing: bool | None = _f(None, "Deprecated transformers alias of activation_checkpointing (TRL "
                                                   "defaults it to True; vvkit leaves it unset so the alias works).")
    logging_steps: float = _f(1, "Log metrics every N optimizer steps.")
    save_steps: float = _f(50, "Save a checkpoint (with the resolved config) every N optimizer steps.")
    report_to: Any = _f("tensorboard", "Trainer integrations; TensorBoard logs go to <output_dir>/tensorboard.")

    def __post_init__(self) -> None:
        from vvkit.rundir import RunDir

        if self.output_dir is None:
            self.output_dir = str(RunDir(self.run_dir).stage("grpo"))
        has_gpu = torch.cuda.is_available()
        if self.use_cpu is None:
            self.use_cpu = not has_gpu
        if self.bf16 is None:
            self.bf16 = bool(has_gpu and not self.use_cpu and torch.cuda.is_bf16_supported())
        if self.sft_answer not in SFT_ANSWERS:
            raise ConfigError(f"grpo_training.sft_answer = {self.sft_answer!r}; use one of {list(SFT_ANSWERS)}")
        if not 0.0 <= self.difficulty_caption_spread <= 0.5:
            raise ConfigError(f"grpo_training.difficulty_caption_spread = {self.difficulty_caption_spread}: a standard "
                              "deviation of F1 scores in [0, 1] lies in [0, 0.5] (paper: 0.2; 0 = keep every caption)")
        if self.instruct_start and (self.instruct_steps > 0 or self.sft_steps > 0):
            raise ConfigError("grpo_training: instruct_start (a shipped start) excludes instruct_steps and sft_steps; "
                              "set those to 0 or instruct_start to null")
        if self.instruct_steps > 0 and self.sft_steps > 0:
            raise ConfigError("grpo_training: set instruct_steps (instruct start) or sft_steps (warm start), not both")
        if self.difficulty_filter_k < 0 or self.sft_steps < 0 or self.instruct_steps < 0:
            raise ConfigError("grpo_training: difficulty_filter_k, sft_steps and instruct_steps must be >= 0 (0 = off)")
        if self.use_vllm and self.vllm_mode != "colocate":
            raise ConfigError(f"grpo_training.vllm_mode = {self.vllm_mode!r}: with use_vllm, vvkit samples video "
                              "with a colocated engine (one per process, vvkit.vllm_engine); set vllm_mode: colocate")
        if self.lora is not None and not isinstance(self.lora, dict):
            raise ConfigError(f"grpo_training.lora must be a mapping of peft LoraConfig fields or null, "
                              f"got {self.lora!r}")
        rewards = self.reward_config()
        if self.reward_weights is not None and list(self.reward_weights) != list(rewards.reward_weights or []):
            raise ConfigError("grpo_training.reward_weights: set the weights in the shared `rewards` section "
                              "(rewards.reward_weights), where the reward names are")
        self.reward_weights = rewards.reward_weights
        super().__post_init__()

    def reward_config(self) -> RewardConfig:
        """The rewards this run trains with (the shared section, validated)."""
        return from_dict(RewardConfig, dict(self.rewards), where="grpo_training: rewards")

    def prompts_per_step(self) -> float:
        """Distinct prompts per optimizer step (TRL batches count completions, not prompts)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size / (
            self.num_generations
        )

    def vvkit_fields(self) -> dict:
        """The fields vvkit adds to GRPOConfig, as a plain dict."""
        base = {f.name for f in dataclasses.fields(GRPOConfig)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in base}


def load_train_config(path: str | Path, run_dir: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """TrainConfig from a params file: `grpo_training` plus the shared sections; `overrides` (`--set`) win."""
    from vvkit.config import load_params, stage_config

    return stage_config(load_params(path), "grpo_training", run_dir=run_dir, overrides=overrides, where=str(path))
