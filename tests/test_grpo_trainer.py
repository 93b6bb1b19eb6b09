"""The multi-process and precision fixes of vvkit.train / vvkit.grpo_trainer on the micro policy world of test_train.py:
T-GRPO under `gate: add` and on evaluation batches, the log-prob pass without its video batch, the LoRA merge a
DeepSpeed run needs, PolicyEval on the main process only, weight dtypes (their memory budget: test_budget.py),
flash-attention checks, the difficulty filter's caption rule and its reuse (two processes: test_distributed.py)."""
import json
import types

import pytest
import torch

from test_train import FRAMES, make_cfg, make_trainer, one_thread, varied_reward, world  # noqa: F401
from vvkit.config import ConfigError
from vvkit.model import load_policy
from vvkit.schema import Row
from vvkit.grpo_config import TrainConfig


class GatedAdd:
    """An accuracy reward built like vvkit's (`settings` with gate add): `ordered` for the first call (the
    ordered group), `shuffled` for the second (T-GRPO's shuffled group)."""

    __name__ = "accuracy"

    def __init__(self, ordered, shuffled):
        self.values, self.calls = (ordered, shuffled), 0
        self.settings = {"gate": "add", "strict_format": True}

    def __call__(self, completions, **kwargs):
        v = self.values[self.calls % 2]
        self.calls += 1
        return [v] * len(completions)


@pytest.mark.parametrize("ordered,bonus", [(1.0, 0.0), (2.0, 0.3)])
def test_tgrpo_with_gate_add_counts_the_task_score_not_the_format_point(world, monkeypatch, ordered, bonus):
    from vvkit import grpo_trainer as T

    monkeypatch.setattr(T, "format_reward", lambda texts, strict_format=True: [1.0] * len(texts))  # all well-formed
    acc = GatedAdd(ordered, 1.0)  # 1.0 = format 1 + task 0: a well-formed wrong answer
    trainer = make_trainer(world, make_cfg(world, f"tgrpo_add_{ordered}", tgrpo=True, max_steps=1),
                           rewards=(acc, varied_reward))
    trainer.train()
    log = next(h for h in trainer.state.log_history if "reward" in h)
    assert log["rewards/temporal_reward/mean"] == pytest.approx(bonus)
    assert log["tgrpo/ordered_acc"] == ordered - 1.0 and log["tgrpo/shuffled_acc"] == 0.0
    assert T.task_part(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), "multiply").tolist() == [1.0, 2.0]


def test_tgrpo_does_not_run_on_evaluation_batches(world):
    acc = GatedAdd(1.0, 1.0)
    trainer = make_trainer(world, make_cfg(world, "tgrpo_eval", tgrpo=True, max_steps=1), rewards=(acc,))
    batch = [dict(x) for x in trainer.train_dataset for _ in range(2)]
    trainer.model.eval()
    out = trainer._generate_and_score_completions(batch)
    assert acc.calls == 1  # the ordered group only: no shuffled sampling on evaluation batches
    assert "tgrpo/ordered_acc" not in trainer._metrics["eval"] and out["completion_ids"].size(0) == len(batch)
    trainer.model.train()
    trainer._generate_and_score_completions(batch)
    assert acc.calls == 3 and trainer._metrics["train"]["tgrpo/ordered_acc"]


def test_logprob_pass_refuses_video_placeholders_without_a_video_batch(world):
    trainer = make_trainer(world, make_cfg(world, "novideo", max_steps=1))
    pad = trainer._video_pad_token_id
    ids = torch.tensor([[1, pad, pad, 2, 3]])
    assert trainer._video_batch is None
    with pytest.raises(RuntimeError, match="no video batch"):
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), 2)
    text_only = torch.tensor([[1, 2, 3, 4, 5]])  # a prompt without video still goes through TRL's pass
    logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, text_only, torch.ones_like(text_only), 2)
    assert logps.shape == (1, 2)


def test_lora_adapter_merges_into_a_loadable_policy(world, tmp_path):
    from vvkit.model import merge_adapter

    trainer = make_trainer(world, make_cfg(world, "lora_merge", lora={"r": 4, "lora_alpha": 8}, learning_rate=5e-2,
                                           max_steps=1))
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))  # what a DeepSpeed run leaves in final/adapter
    assert not (tmp_path / "adapter" / "model.safetensors").exists()
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = merge_adapter(world["policy"], tmp_path / "adapter", tmp_path / "final")  # save_policy adds the processor
    merged = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(out), local_files_only=True).state_dict()
    want = trainer.model.merge_and_unload().state_dict()
    base = load_policy(world["policy"])[0].state_dict()
    assert set(merged) == set(want)
    assert all(torch.allclose(merged[k], want[k], atol=1e-6) for k in want)
    assert any(not torch.equal(merged[k], base[k]) for k in base)  # the adapter's update is in the weights


def test_policy_eval_runs_on_the_main_process_only(tmp_path):
    from vvkit.callbacks import PolicyEval

    calls = []
    hook = PolicyEval(lambda model, processor: calls.append(1) or {"accuracy": 1.0}, every=1, output_dir=tmp_path)
    model = torch.nn.Linear(1, 1)
    args = types.SimpleNamespace(output_dir=str(tmp_path))
    other = types.SimpleNamespace(global_step=1, max_steps=2, is_world_process_zero=False)
    hook.on_step_end(args, other, None, model=model)
    assert calls == [] and hook.history == []
    main = types.SimpleNamespace(global_step=1, max_steps=2, is_world_process_zero=True)
    hook.on_step_end(args, main, None, model=model)
    assert calls == [1] and hook.history == [{"step": 1, "eval/accuracy": 1.0}]


def test_weight_dtypes_follow_the_run(tmp_path, monkeypatch):
    from vvkit.train import weight_dtypes

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    lora = TrainConfig(run_dir=str(tmp_path), bf16=True, use_cpu=True, lora={"r": 8})
    full = TrainConfig(run_dir=str(tmp_path), bf16=True, use_cpu=True)
    fp32 = TrainConfig(run_dir=str(tmp_path), bf16=False, use_cpu=True, lora={"r": 8})
    assert weight_dtypes(lora) == (torch.bfloat16, torch.bfloat16)
    assert weight_dtypes(full) == (torch.float32, torch.bfloat16)  # fp32 master weights, bf16 reference
    assert weight_dtypes(fp32) == (torch.float32, torch.float32)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert weight_dtypes(full)[0] == torch.bfloat16  # the budget that follows them: tests/test_budget.py


def test_flash_attention_falls_back_to_sdpa_with_one_line_and_other_names_pass(monkeypatch, capsys):
    import importlib.util

    from vvkit.model import resolve_attention

    assert resolve_attention("sdpa", torch.float32) == "sdpa"
    assert resolve_attention("flex_attention", torch.float32) == "flex_attention"  # transformers checks the name
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert resolve_attention("flash_attention_2", torch.bfloat16) == "sdpa"
    assert capsys.readouterr().out.count("\n") == 1  # one line
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert resolve_attention("flash_attention_2", torch.float32) == "sdpa"
    assert "bf16" in capsys.readouterr().out
    assert resolve_attention("flash_attention_2", torch.bfloat16) == "flash_attention_2"
    TrainConfig(run_dir="x", attn_implementation="flex_attention")  # no list of three names any more


def _caption_rows(world):
    rows = [Row(**r.to_dict()) for r in world["rows"][:2]]
    video = world["rows"][0].video
    rows.append(Row("c_flat", video, "Describe this video in detail.", "A red square moves right.", "caption"))
    rows.append(Row("c_spread", video, "Describe this video in detail.", "A red square moves.", "caption"))
    return rows


def test_difficulty_filter_drops_captions_whose_f1_barely_varies(world, monkeypatch):
    from vvkit import difficulty as D

    f1s = {"c_flat": [0.5, 0.55, 0.5, 0.45, 0.5], "c_spread": [0.0, 0.9, 0.1, 0.8, 0.5]}

    def scored(model, processor, rows, rewards, frames, n=1, **kw):
        return [[{"correct": r.id == "m0", "f1": f1s[r.id][j] if r.id in f1s else None} for j in range(n)]
                for r in rows]

    monkeypatch.setattr(D, "sample_and_score", scored)
    kept = D.filter_by_difficulty(None, None, _caption_rows(world), {}, FRAMES, k=5, temperature=1.0,
                                  max_new_tokens=2, caption_spread=0.2, judge=object())
    assert [r.id for r in kept] == ["m1", "c_spread"]  # m0: all 5 right; c_flat: F1 std 0.03 < 0.2
    assert kept[1].meta["difficulty"]["f1_std"] == pytest.approx(D.spread(f1s["c_spread"]), abs=1e-6)
    assert D.spread([0.0, 1.0]) == 0.5 and D.spread([0.3] * 5) == 0.0
    with pytest.raises(ConfigError, match="difficulty_caption_spread"):
        TrainConfig(run_dir="x", difficulty_caption_spread=0.7)


def test_filtered_rows_are_computed_once_and_reused_when_settings_match(world, monkeypatch):
    from vvkit import difficulty as D

    calls, loads = [], []

    def fake(model, processor, rows, rewards, frames, **kw):
        calls.append({"rewards": rewards, **kw})
        return rows[1:]

    monkeypatch.setattr(D, "filter_by_difficulty", fake)
    monkeypatch.setattr(D, "load_policy", lambda policy, **kw: loads.append(kw) or (None, None))
    cfg = make_cfg(world, "filter_reuse", difficulty_filter_k=3, rewards={"open_ended_metric": "judge"})
    rows = [Row(**r.to_dict()) for r in world["rows"]]
    first = D.filtered_rows(cfg, world["policy"], rows)
    again = D.filtered_rows(cfg, world["policy"], rows)
    assert len(calls) == 1 and [r.id for r in again] == [r.id for r in first] == [r.id for r in rows[1:]]
    assert loads[0]["dtype"] == torch.float32 and str(loads[0]["device"]) == "cpu"  # the run's device and dtype
    assert calls[0]["rewards"].open_ended_metric == "judge"  # the run's reward settings, not the scorer's own
    saved = json.loads((cfg_dir := __import__("pathlib").Path(cfg.output_dir)).joinpath(D.SETTINGS_FILE).read_text())
    assert saved["settings"]["k"] == 3 and (cfg_dir / D.FILTERED_FILE).is_file()
    D.filtered_rows(make_cfg(world, "filter_reuse", difficulty_filter_k=4), world["policy"], rows)
    assert len(calls) == 2  # other settings: recomputed
