"""vvkit.model / vvkit.processing: the tiny policy builds offline, loads through the stock processor, the chat template
survives Arrow-merged rows, and the vision placeholders are never sampled (oracle tests: test_stock_parts.py)."""
import json

import datasets
import numpy as np
import pytest
import torch

from vvkit.model import _corpus_digest, build_tiny_policy, count_parameters, load_policy, never_sampled_token_ids
from vvkit.processing import get_processor, video_metadata

CORPUS = ["What colour is the shape? A. blue B. white C. green D. purple",
          "<think>the shape is red</think><answer>B</answer>", "Describe this video in detail."] * 4
VIDEO_BLOCK = "<|vision_start|><|video_pad|><|vision_end|>"


def _video(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _messages(question="What colour is the shape?"):
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    return build_tiny_policy(tmp_path_factory.mktemp("policy") / "micro", seed=0, corpus=CORPUS, size="micro")


@pytest.fixture(scope="module")
def policy(policy_dir):
    return load_policy(policy_dir)


def _encode(processor, videos, fps, questions=None):
    questions = questions or ["What colour is the shape?"] * len(videos)
    texts = [processor.apply_chat_template(_messages(q), add_generation_prompt=True) for q in questions]
    return processor(text=texts, videos=videos, video_metadata=video_metadata(videos, fps), padding=True,
                     return_tensors="pt")


def test_build_forward_generate_short_video(policy, policy_dir):
    model, processor = policy
    enc = _encode(processor, [_video(8, 56, 56)], 2.0)
    assert enc["video_grid_thw"].tolist() == [[4, 4, 4]]
    assert tuple(enc["pixel_values_videos"].shape) == (64, 1176)
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert int((enc["input_ids"] == video_id).sum()) == 16  # 4*4*4 patches / merge 2x2
    assert torch.equal(enc["mm_token_type_ids"] == 2, enc["input_ids"] == video_id)
    assert enc["second_per_grid_ts"].tolist() == [1.0]  # temporal patch 2 / 2 fps
    with torch.no_grad():
        logits = model(**enc).logits
        out = model.generate(**enc, max_new_tokens=6, do_sample=False)
    assert logits.shape == (1, enc["input_ids"].shape[1], len(processor.tokenizer))
    assert out.shape[1] > enc["input_ids"].shape[1]
    meta = json.loads((policy_dir / "vvkit_policy.json").read_text())
    assert meta["size"] == "micro" and meta["parameters"] == count_parameters(model)
    assert 150_000 < meta["parameters"]["total"] < 250_000


def test_second_shape_batch_odd_frames_and_fps(policy):
    model, processor = policy
    videos = [_video(5, 56, 84, seed=1), _video(8, 56, 56, seed=2)]  # 5 frames -> last frame repeated -> t=3
    enc = _encode(processor, videos, [2.0, 4.0], questions=["Which way does it move?", "Colour?"])
    assert enc["video_grid_thw"].tolist() == [[3, 4, 6], [4, 4, 4]]
    assert enc["pixel_values_videos"].shape[0] == 3 * 4 * 6 + 64
    assert enc["second_per_grid_ts"].tolist() == [1.0, 0.5]
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert (enc["input_ids"] == video_id).sum(1).tolist() == [18, 16]
    assert enc["attention_mask"][1, 0] == 0 and enc["attention_mask"][:, -1].all()  # left padding
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2


def test_mm_token_type_ids_drive_mrope(policy):
    model, processor = policy
    enc = _encode(processor, [_video(8, 56, 56)], 2.0)
    no_types = {k: v for k, v in enc.items() if k != "mm_token_type_ids"}
    with torch.no_grad():
        with_types, without = model(**enc).logits, model(**no_types).logits
    assert not torch.allclose(with_types, without)  # without them 5.24 silently falls back to 1-D text positions


def test_processor_needs_real_fps(policy):
    _, processor = policy
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True)
    with pytest.raises(ValueError, match="video_metadata"):
        processor(text=[text], videos=[_video(4, 56, 56)], return_tensors="pt")


def test_chat_template_on_arrow_merged_rows(policy):
    _, processor = policy
    video = {"type": "video", "video": "clip.mp4"}  # a path in the part, as Video-R1 / TRL rows carry it
    rows = [{"prompt": [{"role": "user", "content": [video, {"type": "text", "text": "Q1?"}]}]},
            {"prompt": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                        {"role": "user", "content": [{"type": "text", "text": "First:"}, video,
                                                     {"type": "text", "text": "then:"}, video]},
                        {"role": "assistant", "content": [{"type": "text", "text": "<answer>A</answer>"}]}]}]
    merged = datasets.Dataset.from_list(rows)
    assert merged[0]["prompt"][0]["content"][1] == {"type": "text", "video": None, "text": "Q1?"}  # Arrow merged keys
    for row, n_videos in zip(merged, (1, 2)):
        for render in (processor.apply_chat_template, processor.tokenizer.apply_chat_template):
            text = render(row["prompt"], tokenize=False)
            assert text.count("<|video_pad|>") == n_videos and text.count(VIDEO_BLOCK) == n_videos
    text = processor.apply_chat_template(merged[1]["prompt"], add_generation_prompt=True)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nFirst:" + VIDEO_BLOCK + "then:"
                    + VIDEO_BLOCK + "<|im_end|>\n<|im_start|>assistant\n<answer>A</answer><|im_end|>\n"
                    "<|im_start|>assistant\n")
    plain = processor.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=False)
    assert plain == "<|im_start|>user\nhi<|im_end|>\n"  # string content, no default system prompt


def test_vision_tokens_never_sampled(policy, policy_dir):
    model, processor = policy
    banned = never_sampled_token_ids(processor.tokenizer)
    assert sorted(json.loads((policy_dir / "generation_config.json").read_text())["suppress_tokens"]) == sorted(banned)
    enc = _encode(processor, [_video(4, 56, 56)], 2.0)

    def favour_banned(module, args, output):  # a policy that loves the placeholders
        output[..., banned] += 30.0
        return output

    hook = model.lm_head.register_forward_hook(favour_banned)
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            unguarded = model.generate(**enc, max_new_tokens=16, do_sample=True, suppress_tokens=[])
            torch.manual_seed(0)
            guarded = model.generate(**enc, max_new_tokens=48, do_sample=True, num_return_sequences=4,
                                     eos_token_id=None)
    finally:
        hook.remove()
    n = enc["input_ids"].shape[1]
    assert np.isin(unguarded[:, n:].numpy(), banned).any()  # the hook works: without suppression they appear
    assert not np.isin(guarded[:, n:].numpy(), banned).any()
    assert guarded.shape[1] == n + 48


def test_save_load_round_trip_and_determinism(policy, policy_dir, tmp_path):
    model, processor = policy
    enc = _encode(processor, [_video(4, 56, 56)], 2.0)
    again, _ = load_policy(policy_dir, dtype="float32")
    model.save_pretrained(tmp_path / "resaved")
    processor.save_pretrained(tmp_path / "resaved")  # what a trainer checkpoint holds: processor_config.json, no
    resaved, reprocessor = load_policy(tmp_path / "resaved")  # preprocessor_config.json
    assert not (tmp_path / "resaved" / "preprocessor_config.json").exists()
    assert reprocessor.video_processor.to_dict() == processor.video_processor.to_dict()
    with torch.no_grad():
        ref = model(**enc).logits
        assert torch.equal(ref, again(**enc).logits) and torch.equal(ref, resaved(**enc).logits)
    assert build_tiny_policy(policy_dir, seed=0, corpus=CORPUS, size="micro") == policy_dir  # reused as is
    with pytest.raises(FileExistsError, match="seed"):
        build_tiny_policy(policy_dir, seed=1, corpus=CORPUS, size="micro")
    twin, _ = load_policy(build_tiny_policy(tmp_path / "twin", seed=0, corpus=CORPUS, size="micro"))
    other, _ = load_policy(build_tiny_policy(tmp_path / "other", seed=1, corpus=CORPUS, size="micro"))
    sd, sd_twin, sd_other = model.state_dict(), twin.state_dict(), other.state_dict()
    assert all(torch.equal(sd[k], sd_twin[k]) for k in sd)
    assert not all(torch.equal(sd[k], sd_other[k]) for k in sd)


def test_tokenizer_keeps_reasoning_tags(policy):
    _, processor = policy
    tok = processor.tokenizer
    ids = tok("<think>red</think><answer>B</answer><|im_end|>")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>red</think><answer>B</answer>"
    assert all(len(tok.tokenize(t)) == 1 for t in ("<think>", "</think>", "<answer>", "</answer>"))
    assert (tok.eos_token, tok.pad_token, tok.padding_side) == ("<|im_end|>", "<|endoftext|>", "left")


def test_dtype_and_lora(policy_dir):
    bf16, _ = load_policy(policy_dir, dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    wrapped, processor = load_policy(policy_dir, lora={"r": 4, "lora_alpha": 8})
    trainable = [name for name, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    counts = count_parameters(wrapped)
    assert 0 < counts["trainable"] < counts["total"] and counts["vision"] > 0
    enc = _encode(processor, [_video(4, 56, 56)], 2.0)
    assert torch.isfinite(wrapped(**enc).logits).all()


def test_offline_errors_are_clear(policy_dir):
    with pytest.raises(FileNotFoundError) as info:
        load_policy("Qwen/Qwen2.5-VL-7B-Instruct")
    message = str(info.value)
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in message and "offline" in message and "local-dir" in message
    assert info.value.__cause__ is None and info.value.__context__ is None  # one error, no stack of hub errors
    with pytest.raises(FileNotFoundError, match="not a folder"):
        get_processor(policy_dir / "missing")


def test_default_corpus_comes_from_prompts(tmp_path):
    from vvkit.synth.corpus import tokenizer_corpus

    folder = build_tiny_policy(tmp_path / "default", size="micro")
    meta = json.loads((folder / "vvkit_policy.json").read_text())
    assert meta["corpus_sha256"] == _corpus_digest(tokenizer_corpus())
    processor = get_processor(folder)
    assert 300 < len(processor.tokenizer) <= 1000
    assert processor.tokenizer.tokenize("<|im_start|><|video_pad|><think>") == ["<|im_start|>", "<|video_pad|>",
                                                                                  "<think>"]
