"""Stage 03: optional SFT warm start, optional difficulty filter, then GRPO on video (paper §5), read top to bottom
like open-r1's `grpo.py`. `train(cfg)` is the whole stage.

    python -m vvkit.train --config params/default.yaml --run-dir runs/demo
    torchrun --nproc_per_node 2 -m vvkit.train --config params/smoke.yaml     # two CPU processes (gloo)
    accelerate launch --config_file params/accelerate/zero3.yaml -m vvkit.train --config params/paper.yaml

vLLM generation: `use_vllm: true` samples the G completions with a colocated vLLM engine that sees the same frames and
fps (VideoGRPOTrainer, vvkit.vllm_engine; run from .venv-vllm, docs/vllm.md); otherwise HF `generate` batches them.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from vvkit.budget import check_fits, format_memory, uses_deepspeed, weights_in_bf16
from vvkit.callbacks import ConfigInCheckpoint, LivePlot, MetricsLogger, PolicyEval, ProgressLines
from vvkit.config import ConfigError, parse_overrides
from vvkit.data import grpo_dataset, load_split, rl_rows
from vvkit.difficulty import filtered_rows
from vvkit.dist import process_state
from vvkit.grpo_config import TrainConfig, load_train_config
from vvkit.grpo_trainer import VideoGRPOTrainer
from vvkit.instruct import start_policy
from vvkit.io import atomic_write_json
from vvkit.model import load_policy, resolve_attention, save_policy
from vvkit.rewards import get_reward_funcs
from vvkit.rundir import RunDir, StageDir



# ---- policy and data -----------------------------------------------------------------------------------------------
def weight_dtypes(cfg: TrainConfig) -> tuple[torch.dtype, torch.dtype]:
    """(policy, reference) weight dtypes, by `vvkit.budget.weights_in_bf16`: a bf16 run keeps bf16 weights (so
    rollouts and their KV cache are bf16) under DeepSpeed (fp32 master weights live in its optimizer) and with
    LoRA (the frozen base; peft keeps the adapters fp32); full fine-tuning without DeepSpeed keeps fp32 weights
    under bf16 autocast, because Adam updates of ~lr x weight fall below bf16's resolution at lr ~1e-6. The frozen
    reference model is bf16 in every bf16 run."""
    bf16 = bool(cfg.bf16)
    policy = torch.bfloat16 if weights_in_bf16(bf16, uses_deepspeed(cfg), bool(cfg.lora)) else torch.float32
    return policy, torch.bfloat16 if bf16 else torch.float32


# ---- the stage, top to bottom --------------------------------------------------------------------------------------
def lora_config(cfg: TrainConfig) -> Any:
    """peft LoraConfig from `cfg.lora` (defaults: q_proj/v_proj of the language model, causal LM), or None."""
    if not cfg.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(**{"task_type": "CAUSAL_LM", "target_modules": ["q_proj", "v_proj"], **cfg.lora})


def freeze_vision(model: Any) -> int:
    """Freeze the vision tower and its merger; returns how many parameters were frozen."""
    visual = model.model.visual
    for p in visual.parameters():
        p.requires_grad_(False)
    return sum(p.numel() for p in visual.parameters())


def train(cfg: TrainConfig, callbacks: list | None = None, eval_fn: Callable | None = None,
          eval_every: int = 0) -> Path:
    """Shipped instruct start (instruct_start), cached instruct start (instruct_steps > 0) or warm start (sft_steps > 0), rows per task (train_mix),
    difficulty filter (difficulty_filter_k > 0), GRPO; returns the final policy folder
    `<output_dir>/final`, loadable with `vvkit.model.load_policy`. `eval_fn(model, processor) -> dict` runs every
    `eval_every` steps (see `vvkit.evaluate.accuracy_hook`); checkpoints every `save_steps`; `resume_from_checkpoint` resumes."""
    from transformers import set_seed

    set_seed(cfg.seed)
    out, run, rewards = Path(cfg.output_dir), RunDir(cfg.run_dir), cfg.reward_config()
    print(f"[vvkit] {out}: {cfg.prompts_per_step():g} prompts x G={cfg.num_generations} per step, "
          f"lr={cfg.learning_rate:g}, beta={cfg.beta:g}, max_steps={cfg.max_steps}, sft_steps={cfg.sft_steps}, "
          f"start={cfg.instruct_start or f'instruct_steps={cfg.instruct_steps}'}, train_mix={cfg.train_mix}; "
          f"frames={cfg.frames}; rewards={rewards.reward_funcs} gate={rewards.gate} judge={rewards.judge}")

    # ---- policy: the starting point (checkpoint, tiny offline policy, or the SFT warm start) ----
    rows = load_split(cfg, "train")
    start = start_policy(cfg, rows)
    set_seed(cfg.seed)  # building or finding the start policy may draw numbers: GRPO starts from the seed alone
    state = process_state(cfg)
    state.wait_for_everyone()  # the main process may still be writing the warm-start or tiny policy folder

    # ---- memory: the estimate held against the device before anything large is loaded (the launch guard) ----
    from transformers import AutoConfig

    estimate = check_fits(cfg, AutoConfig.from_pretrained(str(start), local_files_only=True))
    if state.is_main_process:
        print(format_memory(estimate))

    # ---- data: the mix per task, optionally without the rows the starting policy already always gets right ----
    rows = rl_rows(cfg, rows)
    if cfg.difficulty_filter_k > 0:  # every process samples its shard; the kept rows are gathered
        rows = filtered_rows(cfg, start, rows)
        set_seed(cfg.seed)  # the filter drew samples on the main process only: every rank starts alike again
    eval_ds = grpo_dataset(load_split(cfg, "eval")) if cfg.eval_strategy != "no" else None

    # ---- processor and model (dtypes: see weight_dtypes) ----
    dtype, ref_dtype = weight_dtypes(cfg)
    model, processor = load_policy(start, dtype=dtype, attn_implementation=resolve_attention(cfg.attn_implementation, dtype))
    if cfg.freeze_vision:
        freeze_vision(model)
    if cfg.beta > 0 and not cfg.lora and "dtype" not in (cfg.model_init_kwargs or {}):
        cfg = copy.copy(cfg)  # TRL builds the reference model from `start` with model_init_kwargs
        cfg.model_init_kwargs = {**(cfg.model_init_kwargs or {}), "dtype": ref_dtype}

    # ---- rewards (T-GRPO's bonus column is added by the trainer) ----
    reward_funcs = get_reward_funcs(rewards.reward_funcs, **rewards.settings(cfg.run_dir))

    # ---- trainer ----
    report = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to or [])
    extra = [MetricsLogger(), ConfigInCheckpoint(), LivePlot(run.figure("03_grpo_curves")), ProgressLines("grpo")]
    if "tensorboard" in report:  # under <output_dir>/tensorboard instead of transformers' <output_dir>/runs/<date>
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        cfg = copy.copy(cfg)  # not dataclasses.replace: TrainingArguments' __post_init__ would run twice
        cfg.report_to = [r for r in report if r != "tensorboard"] or "none"
        if state.is_main_process:  # one event file per run, not one per process
            extra.append(TensorBoardCallback(SummaryWriter(log_dir=str(out / "tensorboard"))))
    if eval_fn is not None:
        extra.append(PolicyEval(eval_fn, eval_every or int(cfg.save_steps)))
    trainer = VideoGRPOTrainer(model=model, reward_funcs=reward_funcs, args=cfg, train_dataset=grpo_dataset(rows),
                               eval_dataset=eval_ds, processing_class=processor, peft_config=lora_config(cfg),
                               callbacks=[*extra, *(callbacks or [])])

    # ---- train ----
    resume = cfg.resume_from_checkpoint
    if resume == "last":  # the newest complete checkpoint (a run killed mid-save leaves a partial one)
        last = StageDir(out).last_checkpoint()
        resume = str(last) if last is not None else None
    trainer.train(resume_from_checkpoint=resume)

    # ---- save ----
    final = save_policy(trainer, processor, StageDir(out).final, start)
    if trainer.accelerator.is_main_process:
        atomic_write_json(StageDir(out).summary, {"start_policy": str(start), "rows": len(rows),
                                                 "global_step": trainer.state.global_step, "final": str(final)})
    return final


# ---- command line --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vvkit.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="params YAML (reads grpo_training + run + frames + rewards)")
    parser.add_argument("--run-dir", default=None, help="run folder (default runs/<run.name>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a grpo_training key (YAML value), e.g. --set max_steps=10")
    args = parser.parse_args(argv)
    try:
        cfg = load_train_config(args.config, args.run_dir, parse_overrides(args.set))
    except ConfigError as e:
        print(f"vvkit.train: error: {e}", file=sys.stderr)
        return 2
    try:
        final = train(cfg)
    except ConfigError as e:  # the launch guard, or a setting only checkable once the policy is known
        print(f"vvkit.train: error: {e}", file=sys.stderr)
        return 2
    print(f"[vvkit] final policy: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
