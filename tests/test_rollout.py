"""vvkit.rollout: the one path from rows to model inputs and the one HF generation loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vvkit.model import build_tiny_policy, load_policy
from vvkit.rollout import collate_prompts, encode_prompt, generate, stop_token_ids, video_inputs, video_lists

MESSAGES = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", seed=0))


def _clip() -> list:
    return [(np.random.default_rng(0).integers(0, 255, (4, 56, 56, 3), dtype=np.uint8), 2.0)]


def test_a_batch_mixing_video_and_text_rows_collates(policy):
    _, processor = policy
    video, text = encode_prompt(processor, MESSAGES, _clip()), encode_prompt(processor, MESSAGES, [])
    got = video_inputs(video_lists([text, video, text]), 0, 3, "cpu")  # once: torch.cat of a (0, 0) pixel tensor
    assert got["pixel_values_videos"].shape == video.pixel_values_videos.shape
    assert got["video_grid_thw"].tolist() == video.video_grid_thw.tolist()
    assert got["second_per_grid_ts"].dtype == torch.float32
    assert video_inputs(video_lists([text, text]), 0, 2, "cpu") == {}  # no video in range: no video kwargs
    batch = collate_prompts([video, text], processor)
    assert batch["input_ids"].shape[0] == 2 and "pixel_values_videos" in batch


def test_generation_stops_at_either_end_token(policy, monkeypatch):
    model, processor = policy
    tok = processor.tokenizer
    ends = stop_token_ids(tok)
    assert set(ends) == {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
    seen = {}
    inner = model.generate

    def spy(**kw):
        seen.update(kw)
        return inner(**kw)

    monkeypatch.setattr(model, "generate", spy)
    generate(model, processor, [encode_prompt(processor, MESSAGES, _clip())], max_new_tokens=2)
    assert sorted(seen["eos_token_id"]) == sorted(ends)
