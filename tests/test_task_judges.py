"""Captions judged apart from the proxy tasks (paper §4: Qwen2.5-72B-Instruct for DarkEventInfer / MixVidQA, GPT-3.5
for AutoDQ): `rewards.caption_judge` gives captions their own judge settings."""
from __future__ import annotations

from pathlib import Path

import pytest

from vvkit.config import ConfigError, RewardConfig, read_params, stage_config
from vvkit.rewards import get_reward_funcs, make_judge
from vvkit.rewards.judges import TaskJudges

ROOT = Path(__file__).resolve().parents[1]


def test_caption_judge_routes_autodq_to_its_own_judge_and_the_rest_to_the_shared_one():
    judge = make_judge(judge="offline", judge_entail_threshold=0.5, caption_judge={"judge_entail_threshold": 0.99,
                                                                                   "judge_lexicon": False})
    assert isinstance(judge, TaskJudges)
    assert judge.caption.entail_threshold == 0.99 and judge.qa.entail_threshold == 0.5
    shared = make_judge(judge="offline", judge_entail_threshold=0.5)
    assert judge.qa is shared  # one judge per settings and process: caches and error counters are shared
    refs, preds = ["a red square moves left"], ["a red square slides to the left side"]
    assert judge.autodq(preds, refs)[0]["f1"] == judge.caption.autodq(preds, refs)[0]["f1"]
    assert judge.score_dark_event(preds, refs) == shared.score_dark_event(preds, refs)
    assert judge.pop_errors() == {}


def test_the_same_settings_give_one_judge_and_a_bad_key_is_named():
    assert not isinstance(make_judge(judge="offline", caption_judge={"judge": "offline"}), TaskJudges)
    with pytest.raises(ValueError, match="caption_judge"):
        make_judge(judge="offline", caption_judge={"caption_alpha": 1.0})
    with pytest.raises(ConfigError, match="caption_judge"):
        RewardConfig(caption_judge={"judge_modle": "x"})


class _Fixed:
    """A judge that gives every answer one score and records the calls."""

    def __init__(self, score: float) -> None:
        self.score, self.calls = score, []

    def score_dark_event(self, preds, refs, questions=None):
        self.calls.append("dark_event")
        return [self.score * 2] * len(preds)

    def score_mixvid(self, preds, refs, questions=None):
        self.calls.append("mixvid")
        return [self.score] * len(preds)

    def autodq(self, preds, refs):
        self.calls.append("caption")
        return [{"recall": self.score, "precision": self.score, "f1": self.score}] * len(preds)


def test_rewards_send_each_task_to_its_judge():
    from vvkit.rewards.tasks import score_batch

    qa, cap = _Fixed(1.0), _Fixed(0.0)
    texts = ["<think>I watch.</think><answer>it grew</answer>"] * 3
    recs = score_batch(texts, ["it grew"] * 3, ["dark_event", "mixvid", "caption"], [None] * 3, ["q"] * 3,
                       TaskJudges(qa, cap), caption_keywords=False)
    assert [r["score"] for r in recs] == [2.0, 1.0, 0.0]
    assert qa.calls == ["dark_event", "mixvid"] and cap.calls == ["caption"]


def test_paper_preset_resolves_two_judges(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    cfg = stage_config(read_params(ROOT / "params" / "paper.yaml"), "grpo_training")
    judge = make_judge(**cfg.reward_config().settings())
    assert isinstance(judge, TaskJudges)
    assert judge.qa.model == "Qwen/Qwen2.5-72B-Instruct" and judge.caption.model == "gpt-3.5-turbo"
