"""The SFT warm start (Video-R1's SFT cold start; VersaVid-R1 has none): supervised steps on template reasoning so
that RL starts from a policy that writes the think/answer format. Rows go through the same row -> frames -> prompt
path as GRPO (`vvkit.rollout`); only the target tokens carry loss."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vvkit.callbacks import MetricsLogger, ProgressLines
from vvkit.data import grpo_dataset, load_split, with_reasoning
from vvkit.dist import resolve_policy
from vvkit.model import load_policy, save_policy
from vvkit.io import atomic_write_json
from vvkit.rollout import PromptCache, special_ids, token_types, video_inputs, video_lists
from vvkit.rundir import WARM_START_FILE, RunDir
from vvkit.schema import Row, from_record, option_letter, option_text
from vvkit.grpo_config import SFT_ANSWERS, TrainConfig
from vvkit.video import FramePolicy


def sft_target(row: Row, answer: str = "letter") -> str:
    """Template reasoning for the warm start, e.g. '<think>The answer is red square.</think><answer>B</answer>';
    `row.meta['reasoning']` overrides the think text. `answer="text"` answers multiple choice with the option's words
    ('<answer>red square</answer>'), which `extract_choice` maps back to the letter: a first calibration of the tiny policy found
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


def pad_right(seqs: list[list[int]], value: int) -> torch.Tensor:
    """Right-padded (batch, longest) ids: SFT sequences end where their targets end."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


class VideoSFTCollator:
    """Rows -> SFT batches: prompt (with its video at the real fps) + template target + <|im_end|>; loss on the
    target only. SFTTrainer's own VLM collator reads `image`/`images` columns only, hence this one."""

    def __init__(self, processor: Any, frame_policy: FramePolicy, answer: str = "letter"):
        self.processor, self.cache, self.answer = processor, PromptCache(processor, frame_policy), answer

    def __call__(self, records: list[dict]) -> dict[str, torch.Tensor]:
        tok = self.processor.tokenizer
        ids, labels, videos = [], [], []
        for rec in records:
            enc = self.cache(rec)[1]
            text = sft_target(from_record(rec), self.answer)
            target = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids.append(enc.input_ids + target)
            labels.append([-100] * len(enc.input_ids) + target)
            videos.append(enc)
        input_ids = pad_right(ids, tok.pad_token_id)
        video_id, image_id = special_ids(self.processor)
        return {"input_ids": input_ids, "attention_mask": pad_right([[1] * len(i) for i in ids], 0),
                "labels": pad_right(labels, -100), "mm_token_type_ids": token_types(input_ids, video_id, image_id),
                **video_inputs(video_lists(videos), 0, len(videos), "cpu")}


def warm_start(cfg: TrainConfig, callbacks: list | None = None) -> Path:
    """SFT on template reasoning (`sft_target`) for `sft_steps` steps, so RL starts from a policy that knows the
    format (Video-R1's SFT cold start; VersaVid-R1 has none). A finished warm start with the same settings is reused."""
    from trl import SFTConfig, SFTTrainer

    out, final = RunDir(cfg.run_dir).stage("warm_start"), RunDir(cfg.run_dir).final("warm_start")
    marker = final / WARM_START_FILE
    settings = {"sft_steps": cfg.sft_steps, "sft_lr": cfg.sft_lr, "sft_batch_size": cfg.sft_batch_size,
                "sft_answer": cfg.sft_answer, "sft_reasoning": cfg.sft_reasoning,
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
    trainer = SFTTrainer(model=model, args=args, train_dataset=grpo_dataset(with_reasoning(load_split(cfg), cfg.sft_reasoning)),
                         processing_class=processor,
                         data_collator=VideoSFTCollator(processor, FramePolicy.from_dict(cfg.frames), cfg.sft_answer),
                         callbacks=[MetricsLogger(out), ProgressLines("warm start"), *(callbacks or [])])
    trainer.train()
    save_policy(trainer, processor, final, source)
    atomic_write_json(marker, {"settings": settings, "final_loss": trainer.state.log_history[-1].get("train_loss")})
    return final


