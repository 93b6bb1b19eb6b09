"""M-RoPE positions of a Qwen2.5-VL prompt (vvkit.model): the text after a video resumes at the largest vision
position + 1, as in Qwen2.5-VL's release code (transformers PR #35569) and vLLM, whatever the video's temporal extent;
and decoding continues at the positions a full forward over prompt + completion gives."""
import numpy as np
import pytest
import torch

from vvkit.model import build_tiny_policy, load_policy, never_sampled_token_ids
from vvkit.rollout import collate_prompts, encode_prompt, special_ids

CORPUS = ["What colour is the shape? A. blue B. white C. green D. purple",
          "<think>the shape is red</think><answer>B</answer>", "Describe this video in detail."] * 4


def _messages(question):
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_policy(tmp_path_factory.mktemp("policy") / "micro", seed=0, corpus=CORPUS, size="micro")


@pytest.fixture(scope="module")
def policy(folder):
    return load_policy(folder)


@pytest.fixture(scope="module")
def batch(policy):
    """Two left-padded prompts: 16 frames at 0.5 fps (temporal positions reach 7 * 2 * 4 = 56, far past the 2 x 2
    merged grid) and 4 frames at 4 fps (temporal extent 1, inside the grid)."""
    _, processor = policy
    rng = np.random.default_rng(0)
    clips = [(rng.integers(0, 256, (16, 56, 56, 3), dtype=np.uint8), 0.5),
             (rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8), 4.0)]
    questions = ["What colour is the shape?", "Describe this video in detail. What colour is the shape?"]
    encoded = [encode_prompt(processor, _messages(q), [c]) for q, c in zip(questions, clips)]
    return collate_prompts(encoded, processor)


def _rope_index(model, batch):
    """`get_rope_index` called as the model's forward calls it (Qwen2_5_VLModel.compute_3d_position_ids)."""
    return model.model.get_rope_index(batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
                                      video_grid_thw=batch["video_grid_thw"],
                                      second_per_grid_ts=batch["second_per_grid_ts"],
                                      attention_mask=batch["attention_mask"])


def _reference_positions(types, grids, seconds, merge, tokens_per_second):
    """Qwen2.5-VL's release rule for one unpadded sample: text runs on from the previous block's largest position
    + 1; a video's temporal index is int(t * second_per_grid * tokens_per_second), offset like height and width."""
    out, start, i, grid = [], 0, 0, iter(zip(grids, seconds))
    while i < len(types):
        j = i
        while j < len(types) and types[j] == types[i]:
            j += 1
        if types[i] == 0:
            out.append(torch.arange(j - i).expand(3, -1) + start)
        else:
            (t, h, w), sec = next(grid)
            tt, hh, ww = torch.meshgrid((torch.arange(t) * sec * tokens_per_second).long(),
                                        torch.arange(h // merge), torch.arange(w // merge), indexing="ij")
            out.append(torch.stack([tt, hh, ww]).reshape(3, -1) + start)
        start = int(out[-1].max()) + 1
        i = j
    return torch.cat(out, dim=1)


def test_text_after_a_long_video_starts_after_its_largest_position(policy, batch):
    model, processor = policy
    video_id, _ = special_ids(processor)
    positions, deltas = _rope_index(model, batch)
    vision = model.config.vision_config
    for b in range(2):
        keep = batch["attention_mask"][b].bool()
        pos, ids = positions[:, b, keep], batch["input_ids"][b, keep]
        video = (ids == video_id).nonzero().squeeze(1)
        after = int(video.max()) + 1
        assert torch.equal(pos[:, after], torch.full((3,), int(pos[:, video].max()) + 1))
        want = _reference_positions(batch["mm_token_type_ids"][b, keep].tolist(), [batch["video_grid_thw"][b].tolist()],
                                    [float(batch["second_per_grid_ts"][b])], vision.spatial_merge_size,
                                    vision.tokens_per_second)
        assert torch.equal(pos, want)
        assert int(deltas[b]) == int(want.max()) + 1 - int(keep.sum())
    long_video = positions[0, 0, batch["input_ids"][0] == video_id]
    assert int(long_video.max() - long_video.min()) == 7 * 2 * 4  # (T - 1) * tokens_per_second * 2 s per patch


@torch.no_grad()
def test_decoding_continues_at_the_positions_of_a_full_forward(policy, batch):
    """Greedy generate places each new token at cache position + rope delta; a training forward over the whole
    sequence recomputes the positions with get_rope_index: both must agree, and so must the logits."""
    model, processor = policy
    n = 6
    width = batch["input_ids"].size(1)
    out = model.generate(**batch, max_new_tokens=n, min_new_tokens=n, do_sample=False, output_logits=True,
                         return_dict_in_generate=True, pad_token_id=processor.tokenizer.pad_token_id,
                         suppress_tokens=never_sampled_token_ids(processor.tokenizer))
    full = dict(batch, input_ids=out.sequences,
                attention_mask=torch.cat([batch["attention_mask"], torch.ones(2, n, dtype=torch.long)], dim=1),
                mm_token_type_ids=torch.cat([batch["mm_token_type_ids"], torch.zeros(2, n, dtype=torch.long)], dim=1))
    _, deltas = _rope_index(model, batch)
    decode = (batch["attention_mask"].sum(1, keepdim=True) + torch.arange(n)) + deltas  # cache position + delta
    positions, _ = _rope_index(model, full)
    assert torch.equal(positions[:, :, width:], decode.expand(3, -1, -1))
    logits = model(**full).logits[:, width - 1:-1]
    assert torch.allclose(torch.stack(out.logits, dim=1), logits, atol=1e-4)


def test_the_reference_model_trl_builds_follows_the_same_rule(policy, batch, folder):
    """With beta > 0 TRL builds the reference model itself from the policy's path (create_model_from_path): the rule
    lives on the class, so its positions are the policy's."""
    from trl.trainer.utils import create_model_from_path

    ref = create_model_from_path(str(folder), device_map=None)
    got, want = _rope_index(ref, batch), _rope_index(policy[0], batch)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    video = (batch["input_ids"][0] == special_ids(policy[1])[0]).nonzero().squeeze(1)
    assert int(got[0][0, 0, int(video.max()) + 1]) == int(got[0][:, 0, video].max()) + 1


def test_images_keep_transformers_positions(policy):
    """An image has one temporal index, so transformers' next start (its start + max(h, w) / merge) is already its
    largest position + 1: the override changes nothing there."""
    model, processor = policy
    image = np.random.default_rng(1).integers(0, 256, (84, 56, 3), dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=[image], return_tensors="pt")
    kwargs = dict(mm_token_type_ids=enc["mm_token_type_ids"], image_grid_thw=enc["image_grid_thw"],
                  attention_mask=enc["attention_mask"])
    got = model.model.get_rope_index(enc["input_ids"], **kwargs)
    original = type(model.model).get_rope_index.__wrapped__(model.model, enc["input_ids"], **kwargs)
    assert torch.equal(got[0], original[0]) and torch.equal(got[1], original[1])
