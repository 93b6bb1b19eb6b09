"""vvkit.train / vvkit.grpo_trainer on a micro Qwen2.5-VL (0.2M params), 4-frame 56x56 videos, 2-3 GRPO steps: the loss
sees the video (log-probs equal a direct video forward, not a no-video one), the right weights move (full, LoRA,
frozen vision), vision placeholders are never sampled, mixed tasks batch, resume continues, beta > 0, T-GRPO and the
difficulty filter do what they say, the SFT warm start learns, configs are strict (the memory estimate: test_budget.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vvkit.config import ConfigError
from vvkit.grpo_config import TrainConfig
from vvkit.model import build_tiny_policy, load_policy
from vvkit.schema import Row, save_rows
from vvkit.video import write_video

CORPUS = ["What colour is the shape? A. red B. blue", "Which colour do you see? blue red green",
          "<think>The answer is red.</think><answer>A</answer>", "Describe this video in detail."] * 4
FRAMES = {"nframes": 4, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}
VISION_TOKENS = ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>")


def varied_reward(completions, **kwargs):
    """A reward with spread inside every group, so advantages (and gradients) are non-zero."""
    return [(sum(map(ord, c[0]["content"])) % 11) / 10 for c in completions]


def mcq_only_reward(completions, problem_type, **kwargs):
    """Applies to mcq rows only (None elsewhere), like vvkit's routed rewards."""
    return [(len(c[0]["content"]) % 3) / 2 if t == "mcq" else None for c, t in zip(completions, problem_type)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Micro models gain nothing from a second thread, and on a busy 2-core machine two OpenMP threads spin-wait
    for each other (a generate call measured ~50x slower); restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A micro policy folder and four rows (mcq and open-ended) over three coloured-square videos."""
    root = tmp_path_factory.mktemp("train")
    policy = build_tiny_policy(root / "policy", seed=0, corpus=CORPUS, size="micro")
    rows = []
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255), (0, 255, 0)]):
        frames = np.zeros((8, 56, 56, 3), np.uint8)
        for t in range(8):
            frames[t, 20:36, 10 + 3 * t:26 + 3 * t] = colour
        write_video(frames, root / f"v{i}.mp4", fps=4)
    rows.append(Row("m0", str(root / "v0.mp4"), "What colour is the shape?", "A", "mcq", ["A. red", "B. blue"]))
    rows.append(Row("m1", str(root / "v1.mp4"), "Which colour do you see?", "B", "mcq", ["A. red", "B. blue"]))
    rows.append(Row("o2", str(root / "v2.mp4"), "What colour is the shape?", "green", "open_ended"))
    rows.append(Row("o1", str(root / "v1.mp4"), "Which colour do you see?", "blue", "open_ended"))
    save_rows(rows, root / "data" / "train.jsonl")
    return {"root": root, "policy": policy, "rows": rows}


def make_cfg(world, name, **kw):
    base = dict(run_dir=str(world["root"] / name), frames=FRAMES, policy=str(world["policy"]), num_generations=2,
                per_device_train_batch_size=4, max_completion_length=6, max_steps=2, learning_rate=5e-3,
                report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0)
    return TrainConfig(**{**base, **kw})


def make_trainer(world, cfg, rewards=(varied_reward,), rows=None, model=None):
    from vvkit.data import grpo_dataset
    from vvkit.train import lora_config
    from vvkit.grpo_trainer import VideoGRPOTrainer

    if model is None:
        model, processor = load_policy(world["policy"])
    else:
        model, processor = model
    return VideoGRPOTrainer(model=model, reward_funcs=list(rewards), args=cfg, processing_class=processor,
                            train_dataset=grpo_dataset(rows or world["rows"]), peft_config=lora_config(cfg))


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model):
    return {n for n, p in model.named_parameters() if n in before and not torch.equal(before[n], p.detach())}


# ---------------------------------------------------------------- the video reaches the loss


def _direct_logps(model, processor, row, completion_ids, temperature, with_video=True):
    """Completion log-probs from a plain forward of prompt + completion, the video encoded from scratch."""
    from vvkit.processing import video_metadata
    from vvkit.prompts import row_to_messages
    from vvkit.video import FramePolicy, read_video

    clip = read_video(row.video, FramePolicy.from_dict(FRAMES))
    text = processor.apply_chat_template(row_to_messages(row), tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], videos=[clip.frames], video_metadata=video_metadata([clip.frames], [clip.sampled_fps]),
                    return_tensors="pt", return_mm_token_type_ids=True)
    ids = torch.cat([enc["input_ids"], completion_ids[None]], 1)
    kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if with_video:
        kw.update(pixel_values_videos=enc["pixel_values_videos"], video_grid_thw=enc["video_grid_thw"],
                  second_per_grid_ts=enc["second_per_grid_ts"],
                  mm_token_type_ids=torch.cat([enc["mm_token_type_ids"], torch.zeros_like(completion_ids)[None]], 1))
    with torch.no_grad():
        logits = model(**kw).logits[0, -len(completion_ids) - 1:-1] / temperature
    return torch.log_softmax(logits.float(), -1).gather(-1, completion_ids[:, None])[:, 0], enc


def test_loss_logps_equal_a_direct_video_forward_and_differ_without_video(world):
    cfg = make_cfg(world, "logps", temperature=0.7, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    trainer = make_trainer(world, cfg)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = cfg.gradient_accumulation_steps  # set by the train loop
    batch = [dict(x) for x in trainer.train_dataset for _ in range(cfg.num_generations)]  # 4 prompts x G = 2 slices
    captured = []
    inner = trainer._get_per_token_logps_and_entropies

    def spy(*args, **kwargs):
        out = inner(*args, **kwargs)
        captured.append(out[0].detach())
        return out

    trainer._get_per_token_logps_and_entropies = spy
    inputs = trainer._prepare_inputs(batch)  # generate, score, shuffle and split as TRL does; first slice
    trainer._compute_loss(trainer.model, inputs)
    logps = captured[-1]
    by_prompt = {}
    for r in world["rows"]:  # prompts are distinct per row, so the prompt ids identify the row after shuffling
        _, enc = _direct_logps(trainer.model, trainer.processing_class, r, torch.tensor([0]), 1.0)
        by_prompt[tuple(enc["input_ids"][0].tolist())] = (r, enc)
    assert len(by_prompt) == len(world["rows"])
    checked = 0
    for i in range(inputs["prompt_ids"].size(0)):
        prompt = tuple(t for t, m in zip(inputs["prompt_ids"][i].tolist(), inputs["prompt_mask"][i].tolist()) if m)
        row, enc = by_prompt[prompt]
        n = int(inputs["completion_mask"][i].sum())
        comp = inputs["completion_ids"][i, :n]
        want, _ = _direct_logps(trainer.model, trainer.processing_class, row, comp, 0.7)
        blind, _ = _direct_logps(trainer.model, trainer.processing_class, row, comp, 0.7, with_video=False)
        torch.testing.assert_close(logps[i, :n], want, atol=1e-5, rtol=1e-4)
        assert (logps[i, :n] - blind).abs().max() > 1e-3  # a no-video forward gives other log-probs
        # the real sampled fps reached M-RoPE: 2 frames per temporal patch at 4 frames over 2 s -> 1 s
        torch.testing.assert_close(inputs["second_per_grid_ts"][i], enc["second_per_grid_ts"].float())
        checked += 1
    assert checked == cfg.per_device_train_batch_size


def test_two_steps_update_the_vision_tower(world):
    trainer = make_trainer(world, make_cfg(world, "full"))
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    vision = [n for n in before if "visual." in n]
    assert vision and set(vision) <= moved
    assert any("language_model" in n for n in moved)


def test_lora_changes_only_adapter_weights(world):
    trainer = make_trainer(world, make_cfg(world, "lora", lora={"r": 4, "lora_alpha": 8}, learning_rate=5e-2))
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    assert moved and all("lora_" in n for n in moved)
    assert any("lora_B" in n for n in moved)


def test_frozen_vision_keeps_the_vision_tower(world):
    from vvkit.train import freeze_vision

    model, processor = load_policy(world["policy"])
    assert freeze_vision(model) > 0
    trainer = make_trainer(world, make_cfg(world, "frozen", freeze_vision=True), model=(model, processor))
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    assert moved and not any("visual." in n for n in moved)


def test_vision_placeholders_are_never_sampled(world):
    from vvkit.rollout import collate_prompts, encode_row
    from vvkit.video import FramePolicy

    model, processor = load_policy(world["policy"])
    vocab = model.lm_head.weight.shape[0]
    ids = [processor.tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
    model.lm_head.bias = torch.nn.Parameter(torch.zeros(vocab))
    with torch.no_grad():
        model.lm_head.bias[ids[0]] = 100.0  # <|video_pad|> is by far the likeliest token everywhere
    row = world["rows"][0]
    enc = encode_row(processor, row, FramePolicy.from_dict(FRAMES))[1]
    batch = collate_prompts([enc, enc], processor)
    model.generation_config.suppress_tokens = None
    raw = model.generate(**batch, max_new_tokens=4, do_sample=True)[:, batch["input_ids"].size(1):]
    assert (raw == ids[0]).all()  # without suppression the placeholder is sampled ...
    trainer = make_trainer(world, make_cfg(world, "pads", max_steps=1), model=(model, processor))
    batch = [dict(x) for x in trainer.train_dataset for _ in range(2)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(batch)  # ... but never by the trainer
    sampled = out["completion_ids"][out["completion_mask"].bool()]
    assert sampled.numel() > 0 and not torch.isin(sampled, torch.tensor(ids)).any()


def test_batch_of_two_prompts_with_mixed_task_types_trains(world):
    cfg = make_cfg(world, "mixed", per_device_train_batch_size=4)  # 2 prompts x G=2 per device step
    trainer = make_trainer(world, cfg, rewards=(varied_reward, mcq_only_reward))
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert trainer.state.global_step == 2 and len(logs) == 2
    keys = set().union(*logs)
    assert {"reward/mcq", "reward/open_ended", "rewards/mcq_only_reward/mcq", "format_rate"} <= keys
    assert "rewards/mcq_only_reward/open_ended" not in keys  # None for open-ended rows: routed, not zeroed
    assert all(np.isfinite(h["loss"]) for h in logs)


def test_beta_reference_model_sees_the_video(world):
    trainer = make_trainer(world, make_cfg(world, "beta", beta=0.04, max_steps=2))
    assert trainer.ref_model is not None
    trainer.train()
    kl = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    assert len(kl) == 2 and abs(kl[0]) < 1e-5  # step 1: policy == reference, both with video
    assert kl[1] > 0


# ---------------------------------------------------------------- options that change the data or the reward


class Alternating:
    """Accuracy reward whose value alternates per call: the first call scores the ordered completions,
    the second the shuffled ones (T-GRPO samples on shuffled frames after the ordered group is scored)."""

    __name__ = "accuracy"

    def __init__(self, ordered, shuffled):
        self.values, self.calls = (ordered, shuffled), 0

    def __call__(self, completions, **kwargs):
        v = self.values[self.calls % 2]
        self.calls += 1
        return [v] * len(completions)


@pytest.mark.parametrize("ordered,shuffled,bonus", [(1.0, 0.0, 0.3), (0.0, 1.0, 0.0), (1.0, 1.0, 0.3)])
def test_tgrpo_rewards_correct_ordered_answers_only_when_order_helps(world, ordered, shuffled, bonus):
    acc = Alternating(ordered, shuffled)
    trainer = make_trainer(world, make_cfg(world, "tgrpo", tgrpo=True, max_steps=1), rewards=(acc, varied_reward))
    trainer.train()
    log = next(h for h in trainer.state.log_history if "reward" in h)
    assert acc.calls == 2  # ordered group, then the shuffled group
    assert log["rewards/temporal_reward/mean"] == pytest.approx(bonus)
    assert log["tgrpo/ordered_acc"] == ordered and log["tgrpo/shuffled_acc"] == shuffled


def test_tgrpo_samples_on_shuffled_frames(world):
    from vvkit import grpo_trainer as T

    seen = []
    cfg = make_cfg(world, "tgrpo_frames", tgrpo=True, max_steps=1)
    trainer = make_trainer(world, cfg, rewards=(Alternating(1.0, 0.0),))
    original = trainer._generate_single_turn

    def spy(prompt_ids, images, fields, n, **kw):
        seen.append(fields["pixel_values_videos"].clone())
        return original(prompt_ids, images, fields, n, **kw)

    trainer._generate_single_turn = spy
    trainer.train()
    ordered, shuffled = seen
    assert shuffled.shape[0] == ordered.shape[0] // 2  # every other row: G/2 shuffled samples per prompt
    assert not torch.equal(ordered[: shuffled.shape[0]], shuffled)
    assert T.temporal_reward([1, 2]) == [None, None]


def test_difficulty_filter_drops_rows_all_k_samples_get_right(world, monkeypatch):
    from vvkit import difficulty as D
    from vvkit.evaluate import sample_and_score

    calls = []

    def scored(model, processor, rows, rewards, frames, n=1, **kw):  # the real sampler, a scripted verdict
        groups = sample_and_score(model, processor, rows, rewards, frames, n=n, **kw)
        calls.extend(r.id for r, g in zip(rows, groups) for _ in g)
        return [[{**s, "correct": r.id == "m0"} for s in g] for r, g in zip(rows, groups)]  # always right on m0

    monkeypatch.setattr(D, "sample_and_score", scored)
    model, processor = load_policy(world["policy"])
    rows = [Row(**r.to_dict()) for r in world["rows"]]
    kept = D.filter_by_difficulty(model, processor, rows, {}, FRAMES, k=3, temperature=1.0, max_new_tokens=4,
                                  caption_spread=0.2, batch_size=2)
    assert [r.id for r in kept] == ["m1", "o2", "o1"]
    assert calls.count("m0") == 3 and len(calls) == 12
    assert kept[0].meta["difficulty"] == {"k": 3, "correct": 0}


def test_warm_start_learns_the_format_and_saves_a_loadable_policy(world):
    from vvkit.rewards.parsing import parse_completion
    from vvkit.rollout import sample_rows
    from vvkit.sft import warm_start

    cfg = make_cfg(world, "sft", sft_steps=30, sft_lr=5e-3, sft_batch_size=4,
                   train_data=str(world["root"] / "data" / "train.jsonl"))
    path = warm_start(cfg)
    from vvkit.callbacks import read_log

    log = read_log(Path(cfg.run_dir) / "train" / "warm_start" / "metrics.jsonl")
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0] / 3
    model, processor = load_policy(path)
    texts = [t[0] for t in sample_rows(model, processor, world["rows"], FRAMES, temperature=0, max_new_tokens=16)]
    assert all(parse_completion(t).well_formed for t in texts), texts
    assert warm_start(cfg) == path  # reused, not retrained


# ---------------------------------------------------------------- the stage end to end: checkpoints, logs, resume


class CrashAfter(__import__("transformers").TrainerCallback):
    """Simulates a crash right after step `step` was logged (past the last checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_log(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def _stage_cfg(world, name, **kw):
    base = dict(max_steps=4, save_strategy="steps", save_steps=2,
                rewards={"reward_funcs": ["accuracy", "test_train:varied_reward"]},
                train_data=str(world["root"] / "data" / "train.jsonl"))
    return make_cfg(world, name, **{**base, **kw})


def test_resume_after_a_crash_continues_from_the_checkpoint_with_nothing_lost(world):
    from vvkit.callbacks import read_log
    from vvkit.train import train

    cfg = _stage_cfg(world, "resume")
    out = Path(cfg.output_dir)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[CrashAfter(3)])
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    saved = json.loads((out / "checkpoint-2" / "train_config.json").read_text())
    assert saved["max_steps"] == 4 and saved["frames"] == FRAMES and saved["policy"] == str(world["policy"])
    assert [r["step"] for r in read_log(out / "metrics.jsonl") if "reward" in r] == [1, 2, 3]

    final = train(_stage_cfg(world, "resume", resume_from_checkpoint="last"))
    steps = [r["step"] for r in read_log(out / "metrics.jsonl") if "reward" in r]
    assert steps == [1, 2, 3, 4]  # step 3 from the crashed run was dropped and redone from checkpoint-2
    assert {r["step"] for r in read_log(out / "completions.jsonl")} == {1, 2, 3, 4}
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    load_policy(final)  # the final policy loads like any checkpoint

    # nothing lost: the same run without a crash ends with the same weights
    straight = train(_stage_cfg(world, "straight"))
    a = load_policy(final)[0].state_dict()
    b = load_policy(straight)[0].state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_train_config_from_params_is_strict(world, tmp_path):
    from vvkit.train import load_train_config

    good = tmp_path / "p.yaml"
    good.write_text("run: {seed: 3}\nframes: {nframes: 4}\ngrpo_training: {num_generations: 2, loss_type: dr_grpo}\n")
    cfg = load_train_config(good, run_dir=str(tmp_path / "r"), overrides={"max_steps": 5})
    assert (cfg.seed, cfg.frames, cfg.loss_type, cfg.max_steps) == (3, {"nframes": 4}, "dr_grpo", 5)
    assert cfg.output_dir == str(tmp_path / "r" / "train" / "grpo") and cfg.use_cpu == (not torch.cuda.is_available())
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo_training: {num_generations: 2, tgrpo_alhpa: 0.3}\n")
    with pytest.raises(ConfigError, match="tgrpo_alhpa"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="reward_weights"):
        TrainConfig(run_dir=str(tmp_path), rewards={"reward_funcs": ["accuracy"], "reward_weights": [1.0, 0.5]})
    with pytest.raises(ConfigError, match="rewards.reward_weights"):
        TrainConfig(run_dir=str(tmp_path), reward_weights=[1.0])  # the weights live beside the reward names
    shared = tmp_path / "shared.yaml"
    shared.write_text("rewards: {gate: add, open_ended_metric: rouge_mean}\n"
                      "grpo_training: {rewards: {open_ended_metric: rouge_l}}\n")
    rc = load_train_config(shared, run_dir=str(tmp_path / "r")).reward_config()
    assert (rc.gate, rc.open_ended_metric) == ("add", "rouge_l")  # the stage's own key wins over the shared one
    with pytest.raises(ConfigError, match="gaet"):
        load_train_config(shared, overrides={"rewards": {"gaet": "add"}})


def test_gradient_checkpointing_alias_is_honoured(tmp_path):
    assert TrainConfig(run_dir=str(tmp_path)).activation_checkpointing is False  # TRL's default True is not taken
    assert TrainConfig(run_dir=str(tmp_path), gradient_checkpointing=True).activation_checkpointing is True
    assert TrainConfig(run_dir=str(tmp_path), activation_checkpointing=True).activation_checkpointing is True


def test_sft_target_answers_with_the_letter_or_with_the_option_words(tmp_path):
    from vvkit.rewards import score_completion
    from vvkit.sft import sft_target

    row = Row("m", "v.mp4", "What colour is the shape?", "B", "mcq", ["A. red", "B. blue", "C. green"],
              meta={"answer_text": "blue"})
    assert sft_target(row) == "<think>The answer is blue.</think><answer>B</answer>"
    words = sft_target(row, "text")
    assert words == "<think>The answer is blue.</think><answer>blue</answer>"
    assert score_completion(words, row.to_dict(), {})["correct"]  # the parser maps the words to option B
    assert sft_target(Row(**{**row.to_dict(), "meta": {}}), "text").endswith("<answer>blue</answer>")  # from options
    open_row = Row("o", "v.mp4", "What colour is the shape?", "blue", "open_ended")
    assert sft_target(open_row, "text") == sft_target(open_row)  # only multiple choice has option words
    with pytest.raises(ValueError, match="sft_answer"):
        sft_target(row, "word")
    with pytest.raises(ConfigError, match="sft_answer"):
        TrainConfig(run_dir=str(tmp_path), sft_answer="word")


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "bnpo"])
def test_trl_loss_variants_train_on_video(world, loss_type):
    trainer = make_trainer(world, make_cfg(world, f"loss_{loss_type}", loss_type=loss_type, max_steps=1))
    before = snapshot(trainer.model)
    trainer.train()
    assert any("visual." in n for n in changed(before, trainer.model))


def test_notebook_parameters_presets_and_accelerate_configs_agree():
    import ast

    import nbformat
    import yaml

    root = Path(__file__).resolve().parents[1]
    nb = nbformat.read(root / "notebooks" / "03_grpo_training.ipynb", 4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    for name in ("zero3", "zero3_offload"):
        acc = yaml.safe_load((root / "params" / "accelerate" / f"{name}.yaml").read_text())
        ds = json.loads((root / acc["deepspeed_config"]["deepspeed_config_file"]).read_text())
        assert acc["distributed_type"] == "DEEPSPEED" and ds["zero_optimization"]["stage"] == 3
        assert ("offload_optimizer" in ds["zero_optimization"]) == (name == "zero3_offload")


def test_policy_eval_hook_logs_and_a_fresh_run_replaces_old_logs(world):
    from vvkit.callbacks import read_log
    from vvkit.train import train

    calls = []

    def fake_eval(model, processor):
        calls.append(model.training)
        return {"accuracy": 0.5}

    cfg = _stage_cfg(world, "evalhook", max_steps=2, save_strategy="no", report_to="tensorboard")
    train(cfg)
    assert cfg.report_to == ["tensorboard"]  # the caller's config is left as it was
    assert list((Path(cfg.output_dir) / "tensorboard").glob("events.out.tfevents.*"))
    train(cfg, eval_fn=fake_eval, eval_every=1)  # same folder, not resumed: the first run's log is replaced
    log = read_log(Path(cfg.output_dir) / "metrics.jsonl")
    assert [r["step"] for r in log if "reward" in r] == [1, 2]
    assert [(r["step"], r["eval/accuracy"]) for r in log if "eval/accuracy" in r] == [(0, 0.5), (1, 0.5), (2, 0.5)]
    assert calls == [False, False, False]  # evaluated in eval mode

    from vvkit.evaluate import accuracy_hook

    model, processor = load_policy(world["policy"])
    scores = accuracy_hook(world["rows"][:2], FRAMES, {}, max_new_tokens=4)(model=model, processor=processor)
    assert set(scores) == {"accuracy", "format_rate"} and all(0 <= v <= 1 for v in scores.values())


def test_a_launch_that_cannot_fit_stops_before_loading_the_policy(world, monkeypatch, capsys):
    import vvkit.budget as B
    import vvkit.train as TR

    monkeypatch.setattr(B, "device_memory", lambda cfg: 64 * 2**20)  # a 64 MiB "device"
    monkeypatch.setattr(TR, "load_policy", lambda *a, **k: pytest.fail("the policy was loaded before the guard"))
    cfg = _stage_cfg(world, "guard")
    with pytest.raises(ConfigError, match="lora|LoRA"):
        TR.train(cfg)
    monkeypatch.setattr(TR, "load_train_config", lambda *a, **k: cfg)
    assert TR.main(["--config", "x.yaml"]) == 2 and "vvkit.train: error:" in capsys.readouterr().err
