"""The one path from a row to model inputs, and the one generation loop (no TRL import).

    row ──► clips (FramePolicy, lazy edits, `meta["window"]`, a condition) ──► chat messages ──► EncodedPrompt
        ──► left-padded batch ──► one batched `generate` (sampling or greedy) ──► completions

Training (SFT warm start, GRPO rollouts and log-prob passes, T-GRPO, the difficulty filter) and evaluation (every
grounding condition, every benchmark) all go through these functions, so a row gets the same frames, the same
prompt and the same tokens everywhere. The processor call passes each clip's real sampled fps, so
`second_per_grid_ts` is what Qwen2.5-VL's M-RoPE expects (qwen-vl-utils passes a fixed 2 fps; vvkit never does).
"""
from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from vvkit.prompts import row_to_messages
from vvkit.schema import Row, from_record
from vvkit.video import FramePolicy, read_video

VIDEO_FIELDS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
CONDITIONS = ("video", "shuffled", "blank", "no_video")
NO_INFO_CONDITIONS = ("blank", "no_video")  # conditions that carry nothing about the content of the video
Clips = list[tuple[np.ndarray, float]]  # per video of a row: (frames (T, H, W, 3) uint8, sampled fps)


# ---- row -> frames ------------------------------------------------------------------------------------------------
def as_row(row: Row | dict) -> Row:
    """A Row from a Row or a dataset record (Arrow turns edits/meta into JSON text; `from_record` undoes it)."""
    return row if isinstance(row, Row) else from_record(row, where=f"row {row.get('id')!r}")


def row_rng(seed: int, row_id: str, *salt: int) -> np.random.Generator:
    """A generator fixed by (seed, row id, salt): the same row gets the same shuffle in every run and batch."""
    return np.random.default_rng([int(seed), zlib.crc32(str(row_id).encode()), *map(int, salt)])


def shuffle_frames(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the frames that is never the identity when T > 1 (T-GRPO and the `shuffled` condition)."""
    perm = rng.permutation(len(frames))
    if len(frames) > 1 and np.array_equal(perm, np.arange(len(frames))):
        perm = np.roll(perm, 1)
    return frames[perm]


def condition_frames(frames: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Real frames (`video`), a permutation of them (`shuffled`) or zeros (`blank`)."""
    if condition == "video":
        return frames
    if condition == "shuffled":
        return shuffle_frames(frames, rng)
    if condition == "blank":
        return np.zeros_like(frames)
    raise ValueError(f"condition {condition!r} has no frames; choose one of {CONDITIONS[:3]}")


def load_clips(row: Row | dict, frame_policy: FramePolicy, condition: str = "video", seed: int = 0) -> Clips:
    """The row's clips under the frame policy: lazy edits and `meta["window"]` ([start, end] s, as MVBench gives)
    applied, then the condition (`no_video` gives no clips). The fps stays the real clip's, so only pixels change."""
    row = as_row(row)
    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r} unknown; choose one of {CONDITIONS}")
    if condition == "no_video":
        return []
    start, end = row.meta.get("window") or (None, None)
    clip = read_video(row.video, frame_policy, start=start, end=end, edits=row.edits)
    return [(condition_frames(clip.frames, condition, row_rng(seed, row.id)), float(clip.sampled_fps))]


# ---- frames -> chat -> encoded prompt -----------------------------------------------------------------------------
def strip_video(messages: list[dict]) -> list[dict]:
    """The same chat without its video parts (the no-video condition: the prompt text alone)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "video"]
        out.append({**m, "content": content})
    return out


@dataclass
class EncodedPrompt:
    """One prompt with its videos encoded: token ids plus that sample's video tensors (kept on CPU until used).
    A prompt without video has empty video tensors, so batches of either kind collate the same way."""

    input_ids: list[int]
    pixel_values_videos: torch.Tensor  # (patches, 3 * temporal_patch * patch * patch)
    video_grid_thw: torch.Tensor  # (n_videos, 3): temporal, height, width patches
    second_per_grid_ts: torch.Tensor  # (n_videos,): seconds per temporal patch = temporal_patch / sampled fps

    @property
    def has_video(self) -> bool:
        return len(self.video_grid_thw) > 0


def encode_prompt(processor: Any, messages: list[dict], clips: Clips) -> EncodedPrompt:
    """Chat template + processor at each clip's real fps; with no clips, the chat without its video parts."""
    from vvkit.processing import video_metadata

    if not clips:
        text = processor.apply_chat_template(strip_video(messages), tokenize=False, add_generation_prompt=True)
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        return EncodedPrompt(ids, torch.zeros(0, 0), torch.zeros(0, 3, dtype=torch.long), torch.zeros(0))
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    frames = [f for f, _ in clips]
    enc = processor(text=[text], videos=frames, video_metadata=video_metadata(frames, [fps for _, fps in clips]),
                    return_tensors="pt")
    return EncodedPrompt(input_ids=enc["input_ids"][0].tolist(), pixel_values_videos=enc["pixel_values_videos"],
                         video_grid_thw=enc["video_grid_thw"].long(),
                         second_per_grid_ts=torch.as_tensor(enc["second_per_grid_ts"], dtype=torch.float32))


def encode_row(processor: Any, row: Row | dict, frame_policy: FramePolicy, condition: str = "video", seed: int = 0,
               prompt_style: str = "reason") -> tuple[Clips, EncodedPrompt]:
    """Row -> (clips, encoded prompt): the whole input path in one call."""
    row = as_row(row)
    clips = load_clips(row, frame_policy, condition, seed)
    return clips, encode_prompt(processor, row_to_messages(row, style=prompt_style), clips)


class PromptCache:
    """LRU of decoded clips and encoded prompts per row (id, video, edits, window), bounded in bytes: rows come back
    every epoch and TRL repeats each prompt G times, so each video is decoded and encoded once while it stays cached."""

    def __init__(self, processor: Any, frame_policy: FramePolicy, max_bytes: int = 1 << 30):
        self.processor, self.frame_policy, self.max_bytes = processor, frame_policy, int(max_bytes)
        self._items: OrderedDict[tuple, tuple[Clips, EncodedPrompt, int]] = OrderedDict()
        self.bytes = 0

    def __call__(self, record: Row | dict) -> tuple[Clips, EncodedPrompt]:
        row = as_row(record)
        key = (row.id, json.dumps(row.video), json.dumps(row.edits), json.dumps(row.meta.get("window")))
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][:2]
        clips, enc = encode_row(self.processor, row, self.frame_policy)
        size = enc.pixel_values_videos.nbytes + sum(f.nbytes for f, _ in clips)
        self._items[key] = (clips, enc, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._items) > 1:
            self.bytes -= self._items.popitem(last=False)[1][2]
        return clips, enc


# ---- encoded prompts -> model inputs ------------------------------------------------------------------------------
def token_types(input_ids: torch.Tensor, video_token_id: int, image_token_id: int | None) -> torch.Tensor:
    """Qwen2.5-VL's `mm_token_type_ids` (0 text, 1 image, 2 video), which M-RoPE needs to place vision tokens."""
    types = (input_ids == video_token_id).long() * 2
    if image_token_id is not None:
        types = types + (input_ids == image_token_id).long()
    return types


def video_lists(encoded: Sequence[EncodedPrompt]) -> dict[str, list[torch.Tensor]]:
    """Per-sample lists of the video fields: TRL's shuffle and split permute and slice lists row by row."""
    return {k: [getattr(e, k) for e in encoded] for k in VIDEO_FIELDS}


def video_inputs(videos: dict[str, list[torch.Tensor]], start: int, end: int, device: Any) -> dict[str, torch.Tensor]:
    """The model's video kwargs for samples [start, end): the tensors of the samples that have video, concatenated in
    row order (a text-only row contributes no patches); {} when none of them has video."""
    has = [len(g) > 0 for g in videos["video_grid_thw"][start:end]]
    if not any(has):
        return {}
    return {k: torch.cat([v for v, h in zip(videos[k][start:end], has) if h]).to(device) for k in VIDEO_FIELDS}


def pad_left(seqs: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) left-padded to the longest sequence: generation appends at every row's right end."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask


def special_ids(processor: Any) -> tuple[int, int | None]:
    """(video placeholder id, image placeholder id or None) of a Qwen2.5-VL tokenizer."""
    tok = processor.tokenizer
    video = tok.convert_tokens_to_ids("<|video_pad|>")
    if video is None or video == tok.unk_token_id:
        raise ValueError("the processor's tokenizer has no <|video_pad|> token: not a Qwen2.5-VL processor")
    image = tok.convert_tokens_to_ids("<|image_pad|>")
    return video, (None if image == tok.unk_token_id else image)


def collate_prompts(encoded: Sequence[EncodedPrompt], processor: Any) -> dict[str, torch.Tensor]:
    """Left-padded generate() inputs, with the video fields of the prompts that carry video."""
    video_id, image_id = special_ids(processor)
    ids, mask = pad_left([e.input_ids for e in encoded], processor.tokenizer.pad_token_id)
    out = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": token_types(ids, video_id, image_id) * mask}
    out.update(video_inputs(video_lists(encoded), 0, len(encoded), "cpu"))
    return out


# ---- the generation loop ------------------------------------------------------------------------------------------
def never_sampled(processor: Any) -> list[int]:
    """Vision placeholder ids, suppressed in every generate call: only the processor may write them (a sampled one
    desynchronises tokens and vision features)."""
    from vvkit.model import never_sampled_token_ids

    return never_sampled_token_ids(processor.tokenizer)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Every token that ends a completion: the chat turn's <|im_end|> and <|endoftext|> (Qwen2.5's generation config
    lists both; a policy may emit either, and one that writes <|endoftext|> must not run on to the length limit)."""
    ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"),
           tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})


@torch.no_grad()
def generate(model: Any, processor: Any, encoded: Sequence[EncodedPrompt], n: int = 1, temperature: float = 0.0,
             max_new_tokens: int = 64, top_p: float = 1.0, batch_size: int = 64, **generate_kwargs: Any
             ) -> list[list[str]]:
    """`n` completions per encoded prompt, decoded; temperature 0 = greedy. The n completions of a prompt are rows
    of one batched `generate` call (VersaVid-R1's released trainer loops one at a time); at most `batch_size`
    sequences go into one call."""
    tok = processor.tokenizer
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else \
        {"do_sample": False}
    gen = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=stop_token_ids(tok),
               suppress_tokens=never_sampled(processor), **sampling, **generate_kwargs)
    device = next(model.parameters()).device
    per_call = max(1, batch_size // max(1, n))
    out: list[list[str]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(encoded), per_call):
            chunk = [e for e in encoded[start:start + per_call] for _ in range(n)]
            batch = {k: v.to(device) for k, v in collate_prompts(chunk, processor).items()}
            ids = model.generate(**batch, **gen)[:, batch["input_ids"].size(1):]
            texts = tok.batch_decode(ids, skip_special_tokens=True)
            out.extend(texts[i:i + n] for i in range(0, len(texts), n))
    finally:
        if was_training:
            model.train()
    return out


def sample_rows(model: Any, processor: Any, rows: Sequence[Row | dict], frames: dict | FramePolicy,
                n: int = 1, temperature: float = 1.0, max_new_tokens: int = 64, condition: str = "video",
                seed: int = 0, prompt_style: str = "reason", batch_size: int = 64, **generate_kwargs: Any
                ) -> list[list[str]]:
    """Rows -> `n` completions each, through the one input path and the one generation loop (difficulty filter,
    notebook previews, benchmarks); temperature 0 = greedy."""
    if frames is None:  # no silent fallback to FramePolicy(): the run's `frames` section decides
        raise ValueError("sample_rows: frames is None; pass the run's frame policy (the params' `frames` section)")
    frame_policy = frames if isinstance(frames, FramePolicy) else FramePolicy.from_dict(frames)
    per_call = max(1, batch_size // max(1, n))  # rows are encoded as they are needed, one generate call at a time
    out: list[list[str]] = []
    for start in range(0, len(rows), per_call):
        encoded = [encode_row(processor, r, frame_policy, condition, seed, prompt_style)[1]
                   for r in rows[start:start + per_call]]
        out += generate(model, processor, encoded, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, **generate_kwargs)
    return out


__all__ = ["CONDITIONS", "NO_INFO_CONDITIONS", "VIDEO_FIELDS", "EncodedPrompt", "PromptCache", "collate_prompts",
           "condition_frames", "encode_prompt", "encode_row", "generate", "load_clips", "never_sampled", "pad_left",
           "row_rng", "sample_rows", "shuffle_frames", "special_ids", "stop_token_ids", "strip_video", "token_types", "video_inputs",
           "video_lists"]
