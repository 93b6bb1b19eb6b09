"""Stage 03: optional SFT warm start, optional difficulty filter, then GRPO on video (paper §5), read top to bottom
like open-r1's `grpo.py`. `train(cfg)` is the whole stage; the helpers above it are the pieces a notebook calls.

    python -m vvkit.train --config params/default.yaml --run-dir runs/demo
    accelerate launch --config_file params/accelerate/zero3.yaml -m vvkit.train --config params/paper.yaml

vLLM generation: `use_vllm` is passed through to TRL, but TRL 1.16 forwards only images to vLLM, so video rows are
refused with a message (HF `generate` batches all G completions of a prompt in one call instead).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import yaml
from trl.trainer.utils import pad

from vvkit.budget import estimate_memory, format_memory
from vvkit.callbacks import ConfigInCheckpoint, LivePlot, MetricsLogger, PolicyEval
from vvkit.config import ConfigError, TrainConfig, from_dict, load_params
from vvkit.io import atomic_write_json
from vvkit.prompts import row_to_messages
from vvkit.schema import Row, load_rows, option_letter, option_text, save_rows, to_dataset
from vvkit.trainer import (PromptCache, VideoGRPOTrainer, collate_prompts, encode_prompt, load_clips, token_types,
                           video_inputs, video_lists)
from vvkit.video import FramePolicy

POLICY_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "chat_template.jinja")


# ---- config --------------------------------------------------------------------------------------------------------
def load_train_config(path: str | Path, run_dir: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """TrainConfig from a params file: its `grpo_training` section plus the shared keys (run.seed, run.policy,
    frames); `overrides` (e.g. from `--set key=value`) win. Unknown keys are errors naming the key."""
    params = load_params(path)
    run = params.get("run") or {}
    shared = {"run_dir": run_dir or str(Path("runs") / str(run.get("name", "train"))), "seed": int(run.get("seed", 0)),
              "frames": params.get("frames") or {}, "policy": run.get("policy")}
    section = {**(params.get("grpo_training") or {}), **(overrides or {})}
    return from_dict(TrainConfig, {**shared, **section}, where=f"{path}: section 'grpo_training'")


# The grpo_training keys of the presets and of notebook 03's parameters cell (every TrainConfig field is settable).
NOTEBOOK_KEYS = (
    "sft_steps", "sft_lr", "sft_batch_size", "sft_answer",  # warm start
    "train_data", "eval_data", "max_train_rows", "difficulty_filter_k", "difficulty_filter_temperature",  # data
    "reward_funcs", "reward_weights", "gate", "reward_settings",  # rewards
    "learning_rate", "lr_scheduler_type", "warmup_steps", "beta", "loss_type", "scale_rewards", "num_generations",
    "temperature", "max_completion_length", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_iterations", "max_steps", "num_train_epochs",  # GRPO
    "lora", "freeze_vision", "bf16", "activation_checkpointing", "tgrpo", "tgrpo_alpha",  # model and options
    "logging_steps", "save_steps", "save_completions", "data_seed", "resume_from_checkpoint",  # bookkeeping
)


def config_from_namespace(namespace: dict, where: str = "notebook 03 parameters") -> TrainConfig:
    """TrainConfig from a notebook's variables: every name that is a TrainConfig field (shared keys included)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.init}
    return from_dict(TrainConfig, {k: v for k, v in namespace.items() if k in fields and not k.startswith("_")},
                     where=where)


# ---- data ----------------------------------------------------------------------------------------------------------
def resolve_policy(cfg: TrainConfig) -> Path:
    """The starting policy folder: `cfg.policy`, or the tiny offline policy built once at <run_dir>/policy/tiny."""
    if cfg.policy:
        return Path(cfg.policy)
    from vvkit.model import build_tiny_policy

    return build_tiny_policy(Path(cfg.run_dir) / "policy" / "tiny", seed=cfg.seed)


def load_split(cfg: TrainConfig, split: str = "train") -> list[Row]:
    """Rows of `train_data` / `eval_data` (default <run_dir>/data/{train,test}.jsonl), validated."""
    given = cfg.train_data if split == "train" else cfg.eval_data
    path = Path(given or Path(cfg.run_dir) / "data" / f"{'train' if split == 'train' else 'test'}.jsonl")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {split} rows. Build them with notebook 01 (`vvkit run --only 1`) or set "
                                f"grpo_training.{'train' if split == 'train' else 'eval'}_data to a rows JSONL")
    rows = load_rows(path)
    return rows[: cfg.max_train_rows] if split == "train" and cfg.max_train_rows else rows


def grpo_dataset(rows: Sequence[Row]) -> Any:
    """Rows as a `datasets.Dataset` with TRL's `prompt` column (chat messages) next to the schema columns."""
    return to_dataset(list(rows)).add_column("prompt", [row_to_messages(r) for r in rows])


SFT_ANSWERS = ("letter", "text")


def sft_target(row: Row, answer: str = "letter") -> str:
    """Template reasoning for the warm start, e.g. '<think>The answer is red square.</think><answer>B</answer>';
    `row.meta['reasoning']` overrides the think text. `answer="text"` answers multiple choice with the option's words
    ('<answer>red square</answer>'), which `extract_choice` maps back to the letter: the learning calibration found
    the word-to-letter lookup, not perception, was what a tiny policy could not learn in a CPU budget."""
    if answer not in SFT_ANSWERS:
        raise ValueError(f"sft_answer={answer!r}; use one of {list(SFT_ANSWERS)}")
    if row.problem_type == "mcq":
        letters = [option_letter(o) for o in row.options or []]
        content = row.meta.get("answer_text") or option_text(row.options[letters.index(row.solution)])
        think = f"The answer is {content}."
        if answer == "text":
            return f"<think>{row.meta.get('reasoning', think)}</think><answer>{content}</answer>"
    elif row.problem_type in ("caption", "dark_event"):
        think = "I follow the events in order."
    else:
        think = f"The answer is {row.solution}"
    return f"<think>{row.meta.get('reasoning', think)}</think><answer>{row.solution}</answer>"


# ---- rollouts (difficulty filter, notebook previews, benchmarks) -----------------------------------------------------
@torch.no_grad()
def sample_completions(model: Any, processor: Any, rows: Sequence[Row], frames: dict | FramePolicy | None = None,
                       n: int = 1, temperature: float = 1.0, max_new_tokens: int = 64, prompts_per_call: int = 4,
                       batched: bool = True, **generate_kwargs: Any) -> list[list[str]]:
    """`n` completions per row; all n of a prompt come from one batched generate (`batched=False`: n separate
    generate calls of one, as VersaVid-R1's trainer does). temperature 0 = greedy; extra kwargs go to generate()."""
    policy = frames if isinstance(frames, FramePolicy) else FramePolicy.from_dict(frames or {})
    tok, cfg = processor.tokenizer, model.config
    sampling = {"temperature": temperature} if temperature > 0 else {}
    gen = dict(max_new_tokens=max_new_tokens, do_sample=temperature > 0, pad_token_id=tok.pad_token_id,
               eos_token_id=tok.eos_token_id, top_k=0, top_p=1.0, **sampling, **generate_kwargs)
    out: list[list[str]] = []
    for start in range(0, len(rows), prompts_per_call):
        chunk = rows[start:start + prompts_per_call]
        encoded = [encode_prompt(processor, row_to_messages(r), load_clips(r.to_dict(), policy)) for r in chunk]
        reps = n if batched else 1
        calls = 1 if batched else n
        texts = [[] for _ in chunk]
        for _ in range(calls):
            batch = collate_prompts([e for e in encoded for _ in range(reps)], tok.pad_token_id, cfg.video_token_id,
                                    cfg.image_token_id)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ids = model.generate(**batch, **gen)[:, batch["input_ids"].size(1):]
            decoded = processor.batch_decode(ids, skip_special_tokens=True)
            for j, text in enumerate(decoded):
                texts[j // reps].append(text)
        out.extend(texts)
    return out


def _correct(text: str, row: Row, judge: Any) -> bool:
    """Whether a completion answers the row correctly, by the evaluation scorer (same parser and judges as rewards)."""
    from vvkit.rewards import score_completion

    return bool(score_completion(text, row.to_dict(), judge)["correct"])


def filter_by_difficulty(policy: Any, rows: Sequence[Row], k: int = 5, temperature: float = 1.0,
                         frames: dict | None = None, judge: Any = None, max_new_tokens: int = 64,
                         is_correct: Callable[[str, Row], bool] | None = None) -> list[Row]:
    """Paper §3: sample k completions per row and drop rows where all k are correct (too easy to teach anything).
    `policy` is a folder or a (model, processor) pair; `is_correct(text, row)` defaults to the evaluation scorer;
    kept rows carry `meta['difficulty'] = {k, correct}`."""
    from vvkit.model import load_policy

    model, processor = load_policy(policy) if isinstance(policy, (str, Path)) else policy
    samples = sample_completions(model, processor, rows, frames, n=k, temperature=temperature,
                                 max_new_tokens=max_new_tokens)
    check = is_correct or (lambda text, row: _correct(text, row, judge))
    kept = []
    for row, texts in zip(rows, samples):
        correct = sum(bool(check(t, row)) for t in texts)
        if correct < k:
            row.meta = {**row.meta, "difficulty": {"k": k, "correct": correct}}
            kept.append(row)
    return kept


def reward_eval(rows: Sequence[Row], frames: dict | None, judge: Any = None, max_new_tokens: int = 64) -> Callable:
    """An evaluation hook for `train(..., eval_fn=...)`: greedy accuracy and format rate on held-out rows."""
    from vvkit.rewards.parsing import parse_completion

    def evaluate(model: Any, processor: Any) -> dict:
        texts = [t[0] for t in sample_completions(model, processor, rows, frames, n=1, temperature=0,
                                                  max_new_tokens=max_new_tokens)]
        return {"accuracy": float(np.mean([_correct(t, r, judge) for t, r in zip(texts, rows)])),
                "format_rate": float(np.mean([parse_completion(t).well_formed for t in texts]))}

    return evaluate


# ---- warm start ----------------------------------------------------------------------------------------------------
class VideoSFTCollator:
    """Rows -> SFT batches: prompt (with its video at the real fps) + template target + <|im_end|>; loss on the
    target only. SFTTrainer's own VLM collator reads `image`/`images` columns only, hence this one."""

    def __init__(self, processor: Any, policy: FramePolicy, answer: str = "letter"):
        self.processor, self.cache, self.answer = processor, PromptCache(processor, policy), answer

    def __call__(self, records: list[dict]) -> dict[str, torch.Tensor]:
        from vvkit.schema import from_record

        tok = self.processor.tokenizer
        ids, labels, videos = [], [], []
        for rec in records:
            enc = self.cache(rec)[1]
            text = sft_target(from_record(rec), self.answer)
            target = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids.append(torch.tensor(enc.input_ids + target))
            labels.append(torch.tensor([-100] * len(enc.input_ids) + target))
            videos.append(enc)
        input_ids = pad(ids, padding_value=tok.pad_token_id, padding_side="right")
        return {"input_ids": input_ids, "attention_mask": pad([torch.ones_like(i) for i in ids], padding_value=0,
                                                              padding_side="right"),
                "labels": pad(labels, padding_value=-100, padding_side="right"),
                "mm_token_type_ids": token_types(input_ids, tok.convert_tokens_to_ids("<|video_pad|>"), None),
                **video_inputs(video_lists(videos), 0, len(videos), "cpu")}


def save_policy(trainer: Any, processor: Any, out: Path, source: Path) -> Path:
    """Save the trained model where `load_policy` reads it: weights (LoRA merged when possible), tokenizer and the
    processor files of the source policy (the processor is built in code, see vvkit.processing)."""
    from peft import PeftModel

    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        trainer.save_model(str(out / "adapter"))
        if trainer.accelerator.is_main_process and not trainer.is_deepspeed_enabled:
            model.merge_and_unload().save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        processor.tokenizer.save_pretrained(str(out))
        for name in POLICY_FILES:
            if (source / name).exists():
                (out / name).write_bytes((source / name).read_bytes())
    return out


def warm_start(cfg: TrainConfig, callbacks: list | None = None) -> Path:
    """SFT on template reasoning (`sft_target`) for `sft_steps` steps, so RL starts from a policy that knows the
    format (Video-R1's SFT cold start; VersaVid-R1 has none). A finished warm start with the same settings is reused."""
    from trl import SFTConfig, SFTTrainer

    from vvkit.model import load_policy

    out = Path(cfg.run_dir) / "train" / "warm_start"
    final, marker = out / "policy", out / "policy" / "warm_start.json"
    settings = {"sft_steps": cfg.sft_steps, "sft_lr": cfg.sft_lr, "sft_batch_size": cfg.sft_batch_size,
                "sft_answer": cfg.sft_answer,
                "seed": cfg.seed, "frames": cfg.frames, "policy": str(resolve_policy(cfg)),
                "train_data": cfg.train_data, "max_train_rows": cfg.max_train_rows}
    if marker.exists() and json.loads(marker.read_text()).get("settings") == settings:
        return final
    source = resolve_policy(cfg)
    model, processor = load_policy(source, dtype=torch.float32)
    args = SFTConfig(output_dir=str(out), max_steps=cfg.sft_steps, learning_rate=cfg.sft_lr,
                     per_device_train_batch_size=cfg.sft_batch_size, warmup_steps=min(20, cfg.sft_steps // 10),
                     lr_scheduler_type="constant_with_warmup", max_grad_norm=1.0,
                     logging_steps=max(1, cfg.sft_steps // 50),
                     save_strategy="no", report_to="none", use_cpu=cfg.use_cpu, bf16=cfg.bf16, seed=cfg.seed,
                     remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True}, max_length=None,
                     activation_checkpointing=cfg.activation_checkpointing, disable_tqdm=cfg.disable_tqdm)
    trainer = SFTTrainer(model=model, args=args, train_dataset=grpo_dataset(load_split(cfg)),
                         processing_class=processor,
                         data_collator=VideoSFTCollator(processor, FramePolicy.from_dict(cfg.frames), cfg.sft_answer),
                         callbacks=[MetricsLogger(out), *(callbacks or [])])
    trainer.train()
    save_policy(trainer, processor, final, source)
    atomic_write_json(marker, {"settings": settings, "final_loss": trainer.state.log_history[-1].get("train_loss")})
    return final


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


def _uses_deepspeed(cfg: TrainConfig) -> bool:
    return bool(cfg.deepspeed) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def train(cfg: TrainConfig, callbacks: list | None = None, eval_fn: Callable | None = None,
          eval_every: int = 0) -> Path:
    """Warm start (sft_steps > 0), difficulty filter (difficulty_filter_k > 0), GRPO; returns the final policy folder
    `<output_dir>/final`, loadable with `vvkit.model.load_policy`. `eval_fn(model, processor) -> dict` runs every
    `eval_every` steps (see `reward_eval`); checkpoints every `save_steps`; `resume_from_checkpoint` resumes."""
    from transformers import set_seed

    from vvkit.model import load_policy
    from vvkit.rewards import get_judge, get_reward_funcs

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    print(f"[vvkit] {out}: " + ", ".join(f"{k}={getattr(cfg, k)!r}" for k in NOTEBOOK_KEYS)
          + f"; frames={cfg.frames}; {cfg.prompts_per_step():g} prompts x G={cfg.num_generations} per step")

    # ---- policy: the starting point (checkpoint, tiny offline policy, or the SFT warm start) ----
    start = warm_start(cfg) if cfg.sft_steps > 0 else resolve_policy(cfg)

    # ---- data (optionally without the rows the starting policy already always gets right) ----
    rows = load_split(cfg, "train")
    if cfg.difficulty_filter_k > 0:
        n = len(rows)
        rows = filter_by_difficulty(start, rows, k=cfg.difficulty_filter_k, frames=cfg.frames,
                                    temperature=cfg.difficulty_filter_temperature,
                                    judge=get_judge(gate=cfg.gate, **cfg.reward_settings),
                                    max_new_tokens=cfg.max_completion_length)
        save_rows(rows, out / "train_filtered.jsonl")
        print(f"[vvkit] difficulty filter: kept {len(rows)} of {n} rows")
    eval_ds = grpo_dataset(load_split(cfg, "eval")) if cfg.eval_strategy != "no" else None

    # ---- processor and model (fp32 weights + bf16 autocast unless DeepSpeed keeps fp32 master weights) ----
    dtype = torch.bfloat16 if cfg.bf16 and _uses_deepspeed(cfg) else torch.float32
    model, processor = load_policy(start, dtype=dtype)
    if cfg.freeze_vision:
        freeze_vision(model)
    print(format_memory(estimate_memory(cfg, model.config)))

    # ---- rewards (T-GRPO's bonus column is added by the trainer) ----
    reward_funcs = get_reward_funcs(cfg.reward_funcs, gate=cfg.gate, **cfg.reward_settings)

    # ---- trainer ----
    report = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to or [])
    extra = [MetricsLogger(), ConfigInCheckpoint(), LivePlot(Path(cfg.run_dir) / "figures" / "03_grpo_curves.png")]
    if "tensorboard" in report:  # under <output_dir>/tensorboard instead of transformers' <output_dir>/runs/<date>
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        cfg = copy.copy(cfg)  # not dataclasses.replace: TrainingArguments' __post_init__ would run twice
        cfg.report_to = [r for r in report if r != "tensorboard"] or "none"
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
    parser.add_argument("--config", required=True, help="params YAML (reads grpo_training + run + frames)")
    parser.add_argument("--run-dir", default=None, help="run folder (default runs/<run.name>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a grpo_training key (YAML value), e.g. --set max_steps=10")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        value = yaml.safe_load(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-5" as text; a number was meant
            try:
                value = float(value)
            except ValueError:
                pass
        overrides[key] = value
    try:
        cfg = load_train_config(args.config, args.run_dir, overrides)
    except ConfigError as e:
        print(f"vvkit.train: error: {e}", file=sys.stderr)
        return 2
    print(f"[vvkit] {cfg.output_dir}: {cfg.prompts_per_step():g} prompts x G={cfg.num_generations} per step")
    print(f"[vvkit] final policy: {train(cfg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
