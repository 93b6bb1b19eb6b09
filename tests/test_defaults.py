"""One home for each default: a setting that a library function or class also takes as a keyword (so it can be called
on its own) must default to the value of the config field that owns it, or take no default at all. A changed default
in `RewardConfig` / `TrainConfig` then cannot leave a second, stale copy live elsewhere."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from vvkit.grpo_config import TrainConfig
from vvkit.rewards import registry, rule, tasks
from vvkit.rewards.client import HTTPJudge
from vvkit.rewards.judges import OfflineJudge
from vvkit.rewards.registry import RewardConfig

REWARD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RewardConfig)}


def keyword_defaults(fn) -> dict:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("fn", [fn for fn, _, _ in registry.REWARDS.values()] + [tasks.score_batch],
                         ids=lambda f: f.__name__)
def test_reward_functions_default_to_the_reward_config(fn):
    stale = {k: v for k, v in keyword_defaults(fn).items()
             if k in REWARD_DEFAULTS and k != "judge" and v != REWARD_DEFAULTS[k]}  # `judge` is the object
    assert not stale, f"{fn.__name__}: defaults {stale} differ from RewardConfig's"


@pytest.mark.parametrize("cls, keys", [(OfflineJudge, registry._OFFLINE_KEYS), (HTTPJudge, registry._HTTP_KEYS)])
def test_judges_default_to_the_reward_config(cls, keys):
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    stale = {k: (fields[v], REWARD_DEFAULTS[k]) for k, v in keys.items()
             if fields.get(v, dataclasses.MISSING) is not dataclasses.MISSING and REWARD_DEFAULTS[k] is not None
             and fields[v] != REWARD_DEFAULTS[k]}
    assert not stale, f"{cls.__name__}: (own, RewardConfig) {stale}"


def test_the_filter_takes_its_settings_from_the_training_config():
    from vvkit.difficulty import filter_by_difficulty

    params = inspect.signature(filter_by_difficulty).parameters
    for name in ("k", "temperature", "max_new_tokens", "caption_spread"):
        assert params[name].default is inspect.Parameter.empty, f"filter_by_difficulty({name}=...) has a default"
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert defaults["difficulty_caption_spread"] == 0.2 and defaults["difficulty_filter_temperature"] == 1.0


def test_rule_rewards_are_checked_too():
    assert rule.format_reward in [fn for fn, _, _ in registry.REWARDS.values()]
