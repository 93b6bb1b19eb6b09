"""Stage 03: optional SFT warm start, optional difficulty filter, then GRPO on video (paper §5), read top to bottom
like open-r1's `grpo.py`. `train(cfg)` is the whole stage.

    python -m vvkit.train --config params/default.yaml --run-dir runs/demo
    torchrun --nproc_per_node 2 -m vvkit.train --config params/smoke.yaml     # two CPU processes (gloo)
    accelerate launch --config_file params/accelerate/zero3.yaml -m vvkit.train --config params/paper.yaml

vLLM generation: `use_vllm` is passed through to TRL, but TRL 1.16 forwards only images to vLLM, so video rows are
refused with a message (HF `generate` batches all G completions of a prompt in one call instead).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from vvkit.budget import estimate_memory, format_memory, uses_deepspeed, weights_in_bf16
from vvkit.callbacks import ConfigInCheckpoint, LivePlot, MetricsLogger, PolicyEval, ProgressLines
from vvkit.config import ConfigError, parse_overrides
from vvkit.io import atomic_write_json
from vvkit.prompts import row_to_messages
from vvkit.rundir import RunDir
from vvkit.sft import warm_start
from vvkit.schema import Row, load_rows, save_rows, to_dataset
from vvkit.grpo_config import TrainConfig, load_train_config
from vvkit.grpo_trainer import VideoGRPOTrainer

POLICY_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "chat_template.jinja")


# ---- policy and data -----------------------------------------------------------------------------------------------
def process_state(cfg: TrainConfig) -> Any:
    """accelerate's PartialState as the Trainer will see it. On CPU a bare `PartialState()` under torchrun sets up
    one process per rank (each its own main), so the config's own device setup (`use_cpu`, the gloo backend,
    `ddp_timeout`) must run first; `cfg.world_size` triggers it."""
    from accelerate import PartialState

    if cfg.world_size > 1 and uses_deepspeed(cfg):
        import deepspeed
        import torch.distributed as dist

        # DeepSpeed's own communicator must know the process group before ZeRO-3 partitions a model at load time
        # (accelerate sets it up for GPUs; with gloo on CPU it would count one process and refuse the batch sizes)
        deepspeed.init_distributed(dist_backend=dist.get_backend() if dist.is_initialized() else None)
    return PartialState()


@contextlib.contextmanager
def whole_model_init() -> Any:
    """Build a model whole, outside DeepSpeed ZeRO-3's partitioned init: transformers enters `zero.Init` for every
    model it creates while a ZeRO-3 config is live, which a build on one process (the tiny policy, written by the
    main process while the others wait) must not do."""
    from transformers.integrations import deepspeed as hf_ds

    ref = hf_ds._hf_deepspeed_config_weak_ref
    live = ref() if ref is not None else None
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if live is not None:
            hf_ds.set_hf_deepspeed_config(live)


def resolve_policy(cfg: TrainConfig) -> Path:
    """The starting policy folder: `cfg.policy`, or the tiny offline policy built once at <run_dir>/policy/tiny (on
    the main process; the other processes wait for it and then read the same folder)."""
    if cfg.policy:
        return Path(cfg.policy)
    from vvkit.model import build_tiny_policy

    with process_state(cfg).main_process_first(), whole_model_init():
        return build_tiny_policy(RunDir(cfg.run_dir).tiny_policy, seed=cfg.seed)


def start_policy(cfg: TrainConfig, rows: Sequence[Row] | None = None) -> Path:
    """The policy GRPO starts from: the cached instruct policy (instruct_steps > 0, `vvkit.study`), the SFT warm start
    (sft_steps > 0), or `resolve_policy`; built here when missing."""
    if cfg.instruct_steps > 0:
        from vvkit.study import build_instruct

        return build_instruct(cfg, load_split(cfg, "train") if rows is None else rows)
    return warm_start(cfg) if cfg.sft_steps > 0 else resolve_policy(cfg)


def load_split(cfg: TrainConfig, split: str = "train") -> list[Row]:
    """Rows of `train_data` / `eval_data` (default <run_dir>/data/{train,test}.jsonl), validated."""
    given = cfg.train_data if split == "train" else cfg.eval_data
    path = Path(given or RunDir(cfg.run_dir).rows("train" if split == "train" else "test"))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {split} rows. Build them with notebook 01 (`vvkit run --only 1`) or set "
                                f"grpo_training.{'train' if split == 'train' else 'eval'}_data to a rows JSONL")
    rows = load_rows(path)
    return rows[: cfg.max_train_rows] if split == "train" and cfg.max_train_rows else rows


def grpo_dataset(rows: Sequence[Row]) -> Any:
    """Rows as a `datasets.Dataset` with TRL's `prompt` column (chat messages) next to the schema columns."""
    return to_dataset(list(rows)).add_column("prompt", [row_to_messages(r) for r in rows])


def save_policy(trainer: Any, processor: Any, out: Path, source: Path) -> Path:
    """Save the trained model where `load_policy` reads it: weights (LoRA merged), tokenizer and the processor files
    of the source policy (the processor is built in code, see vvkit.processing). Under DeepSpeed the in-memory LoRA
    model is sharded, so the main process merges the saved adapter into a fresh CPU copy of the source instead."""
    from peft import PeftModel

    model = trainer.accelerator.unwrap_model(trainer.model)
    main = trainer.accelerator.is_main_process
    if isinstance(model, PeftModel):
        trainer.save_model(str(out / "adapter"))
        trainer.accelerator.wait_for_everyone()  # every shard of the adapter is written
        if main and trainer.is_deepspeed_enabled:
            merge_adapter(source, out / "adapter", out)
        elif main:
            model.merge_and_unload().save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if main:
        processor.tokenizer.save_pretrained(str(out))
        for name in POLICY_FILES:
            if (source / name).exists():
                (out / name).write_bytes((source / name).read_bytes())
    trainer.accelerator.wait_for_everyone()  # no process returns a folder the main process is still writing
    return out


def merge_adapter(source: str | Path, adapter: str | Path, out: str | Path) -> Path:
    """Base policy `source` + LoRA adapter folder `adapter`, merged on the CPU and saved to `out` (peft's
    `merge_and_unload`); the weights keep the source checkpoint's dtype."""
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(source), dtype="auto", local_files_only=True)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    return Path(out)


def weight_dtypes(cfg: TrainConfig) -> tuple[torch.dtype, torch.dtype]:
    """(policy, reference) weight dtypes, by `vvkit.budget.weights_in_bf16`: a bf16 run keeps bf16 weights (so
    rollouts and their KV cache are bf16) under DeepSpeed (fp32 master weights live in its optimizer) and with
    LoRA (the frozen base; peft keeps the adapters fp32); full fine-tuning without DeepSpeed keeps fp32 weights
    under bf16 autocast, because Adam updates of ~lr x weight fall below bf16's resolution at lr ~1e-6. The frozen
    reference model is bf16 in every bf16 run."""
    bf16 = bool(cfg.bf16)
    policy = torch.bfloat16 if weights_in_bf16(bf16, uses_deepspeed(cfg), bool(cfg.lora)) else torch.float32
    return policy, torch.bfloat16 if bf16 else torch.float32


def check_attention(name: str, dtype: torch.dtype) -> None:
    """flash_attention_2 needs the flash-attn package and 16-bit weights: say so before loading, not mid-run."""
    if name != "flash_attention_2":
        return
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise ConfigError("grpo_training.attn_implementation = flash_attention_2, but the flash-attn package is not "
                          "importable here; install it (pip install flash-attn --no-build-isolation, CUDA only) or "
                          "set attn_implementation: sdpa")
    if dtype not in (torch.bfloat16, torch.float16):
        raise ConfigError(f"grpo_training.attn_implementation = flash_attention_2 needs bf16 weights, but this run "
                          f"loads the policy in {dtype} (bf16 is off, or full fine-tuning without DeepSpeed keeps fp32 "
                          "master weights); use sdpa, or bf16 with LoRA or DeepSpeed")


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
    """Instruct start (instruct_steps > 0, vvkit.study) or warm start (sft_steps > 0), rows per task (train_mix),
    difficulty filter (difficulty_filter_k > 0), GRPO; returns the final policy folder
    `<output_dir>/final`, loadable with `vvkit.model.load_policy`. `eval_fn(model, processor) -> dict` runs every
    `eval_every` steps (see `vvkit.evaluate.accuracy_hook`); checkpoints every `save_steps`; `resume_from_checkpoint` resumes."""
    from transformers import set_seed

    from vvkit.difficulty import filtered_rows
    from vvkit.model import load_policy
    from vvkit.rewards import get_reward_funcs, make_judge
    from vvkit.study import rl_rows

    set_seed(cfg.seed)
    out, run, rewards = Path(cfg.output_dir), RunDir(cfg.run_dir), cfg.reward_config()
    print(f"[vvkit] {out}: {cfg.prompts_per_step():g} prompts x G={cfg.num_generations} per step, "
          f"lr={cfg.learning_rate:g}, beta={cfg.beta:g}, max_steps={cfg.max_steps}, sft_steps={cfg.sft_steps}, "
          f"instruct_steps={cfg.instruct_steps}, train_mix={cfg.train_mix}; "
          f"frames={cfg.frames}; rewards={rewards.reward_funcs} gate={rewards.gate} judge={rewards.judge}")

    # ---- policy: the starting point (checkpoint, tiny offline policy, or the SFT warm start) ----
    rows = load_split(cfg, "train")
    start = start_policy(cfg, rows)
    set_seed(cfg.seed)  # building or finding the start policy may draw numbers: GRPO starts from the seed alone
    state = process_state(cfg)
    state.wait_for_everyone()  # the main process may still be writing the warm-start or tiny policy folder

    # ---- data: the mix per task, optionally without the rows the starting policy already always gets right ----
    rows = rl_rows(cfg, rows)
    if cfg.difficulty_filter_k > 0:  # once, on the main process; the kept rows are broadcast
        rows = filtered_rows(cfg, start, rows, lambda: make_judge(**rewards.settings(cfg.run_dir)))
        set_seed(cfg.seed)  # the filter drew samples on the main process only: every rank starts alike again
    eval_ds = grpo_dataset(load_split(cfg, "eval")) if cfg.eval_strategy != "no" else None

    # ---- processor and model (dtypes: see weight_dtypes) ----
    dtype, ref_dtype = weight_dtypes(cfg)
    check_attention(cfg.attn_implementation, dtype)
    model, processor = load_policy(start, dtype=dtype, attn_implementation=cfg.attn_implementation)
    if cfg.freeze_vision:
        freeze_vision(model)
    print(format_memory(estimate_memory(cfg, model.config)))
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
    if resume == "last":
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(str(out)) if out.is_dir() else None
    trainer.train(resume_from_checkpoint=resume)

    # ---- save ----
    final = save_policy(trainer, processor, out / "final", start)
    if trainer.accelerator.is_main_process:
        atomic_write_json(out / "summary.json", {"start_policy": str(start), "rows": len(rows),
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
    print(f"[vvkit] final policy: {train(cfg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
