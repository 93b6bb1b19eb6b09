"""One registry from reward names (as written in params YAML) to TRL reward callables (open-r1
`get_reward_funcs`, TRL `trl/scripts/grpo.py`).

Each callable is a `RewardFn`: a small class holding a module-level function and its settings, with `__name__` set
to the registry name, so it pickles into rollout workers and TRL logs it as `rewards/<name>/mean` (TRL unwraps a
`functools.partial` to the inner function's name, which would log `accuracy_reward` instead of `accuracy`).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Sequence

from vvkit.rewards import rule, tasks
from vvkit.rewards.judges import JudgeSpec, resolve_judge



def _defaults() -> dict[str, Any]:
    """Every setting a reward or judge takes, with its default: the fields of `vvkit.config.RewardConfig` (the one
    home of these defaults) other than the reward list and its weights."""
    from vvkit.config import RewardConfig

    return {f.name: f.default for f in dataclasses.fields(RewardConfig)
            if f.name not in ("reward_funcs", "reward_weights")}


DEFAULT_SETTINGS: dict[str, Any] = _defaults()
_HTTP_KEYS = {"judge_base_url": "base_url", "judge_model": "model", "judge_api_key_env": "api_key_env",
              "judge_cache": "cache_path", "judge_timeout_s": "timeout_s", "judge_max_retries": "max_retries",
              "judge_concurrency": "concurrency", "judge_on_error": "on_error"}
_OFFLINE_KEYS = {"judge_dark_full": "dark_full", "judge_dark_partial": "dark_partial",
                 "judge_mixvid_threshold": "mixvid_threshold", "judge_entail_threshold": "entail_threshold",
                 "judge_lexicon": "lexicon"}
JUDGE_SETTINGS = ("judge", *_HTTP_KEYS, *_OFFLINE_KEYS)  # what caption_judge may set

# name -> (function, the settings it takes, the argument that receives the judge or None). A setting is passed under
# its own name: the function's keyword = the RewardConfig field = the YAML key. The judge argument gets the judge
# the settings name (`make_judge`), not the `judge` setting itself; `caption_judge` only shapes that judge.
REWARDS: dict[str, tuple[Callable, tuple[str, ...], str | None]] = {
    "format": (rule.format_reward, ("strict_format",), None),
    "accuracy": (tasks.accuracy_reward, ("gate", "strict_format", "open_ended_metric", "caption_alpha",
                                         "caption_keywords"), "judge"),
    "mcq": (rule.mcq_reward, ("strict_format",), None),
    "dark_event": (tasks.dark_event_reward, ("strict_format",), "judge"),
    "mixvid": (tasks.mixvid_reward, ("strict_format",), "judge"),
    "open_ended": (tasks.open_ended_reward, ("open_ended_metric", "strict_format"), "judge"),
    "caption": (tasks.caption_reward, ("strict_format", "caption_alpha", "caption_keywords"), "judge"),
    "keywords": (rule.keywords_reward, ("strict_format",), None),
    "rouge": (rule.rouge_reward, ("rouge_variant", "strict_format"), None),
    "length": (tasks.length_reward, ("length_min", "length_max", "length_bonus", "length_min_correct",
                                     "strict_format"), "judge"),
    "repetition": (rule.repetition_reward, ("repetition_ngram", "repetition_max_penalty"), None),
}


class RewardFn:
    """A named, picklable reward: `fn(completions, **columns, **settings)`, logging judge errors through TRL's
    `log_metric` when given (per-task means are logged once, by the trainer, as `rewards/<name>/<task>`); `errors` counts judge failures over its lifetime."""

    def __init__(self, name: str, fn: Callable, **settings: Any) -> None:
        self.__name__ = name
        self.fn, self.settings = fn, settings
        self.errors: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"RewardFn({self.__name__!r}, {self.fn.__name__})"

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        log_metric = columns.pop("log_metric", None)
        values = self.fn(completions, **{**columns, **self.settings})
        failed = _pop_errors(self.settings["judge"]) if "judge" in self.settings else {}
        for kind, n in failed.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        if log_metric is not None:
            for kind, n in failed.items():
                log_metric(f"{self.__name__}/judge_{kind}", float(n))
        return values


def _pop_errors(judge: Any) -> dict[str, int]:
    pop = getattr(resolve_judge(judge), "pop_errors", None)
    return pop() if callable(pop) else {}


def per_task_means(values: Sequence[float | None], types: Sequence[str] | None) -> dict[str, float]:
    """Mean reward per task type over the items it applies to."""
    if types is None:
        return {}
    sums: dict[str, list[float]] = {}
    for v, t in zip(values, types):
        if v is not None:
            sums.setdefault(t, []).append(v)
    return {t: sum(v) / len(v) for t, v in sums.items()}


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in; an unknown key is an error naming it and the valid keys."""
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise KeyError(f"unknown reward setting(s) {unknown}; valid: {sorted(DEFAULT_SETTINGS)}")
    merged = {**DEFAULT_SETTINGS, **settings}
    caption = merged["caption_judge"]
    if caption is not None and (not isinstance(caption, dict) or set(caption) - set(JUDGE_SETTINGS)):
        raise ValueError(f"caption_judge: a mapping of judge settings {list(JUDGE_SETTINGS)} (or null), got {caption!r}")
    if merged["gate"] not in tasks.GATES:
        raise ValueError(f"gate {merged['gate']!r} unknown; choose one of {tasks.GATES}")
    if merged["open_ended_metric"] not in tasks.OPEN_ENDED_METRICS:
        raise ValueError(f"open_ended_metric {merged['open_ended_metric']!r}; choose one of {tasks.OPEN_ENDED_METRICS}")
    return merged


def _judge_spec(**settings: Any) -> Any:
    """The judge the settings name: a JudgeSpec (offline, http, or `tasks` when `caption_judge` gives captions their
    own judge) or the judge object passed as `judge`."""
    s = check_settings(settings)
    caption = s.pop("caption_judge") or {}
    if caption:
        qa, cap = _judge_spec(**s), _judge_spec(**{**s, **caption})
        return qa if qa == cap else JudgeSpec.make("tasks", qa=qa, caption=cap)
    kind = s["judge"]
    if not isinstance(kind, str):
        return resolve_judge(kind)  # an object: checked, used as is
    if kind == "offline":
        return JudgeSpec.make("offline", **{v: s[k] for k, v in _OFFLINE_KEYS.items()})
    if kind == "http":
        if not s["judge_base_url"] or not s["judge_model"]:
            raise ValueError("judge='http' needs judge_base_url (e.g. http://localhost:8000/v1) and judge_model")
        return JudgeSpec.make("http", **{v: s[k] for k, v in _HTTP_KEYS.items()})
    raise ValueError(f"judge {kind!r} unknown; choose 'offline' or 'http'")


def make_judge(**settings: Any) -> Any:
    """The one judge factory: the judge the `rewards` settings name (keyword names = the YAML keys: judge,
    judge_base_url, judge_model, judge_dark_full, ...), shared per process; `judge=` may also be a judge object."""
    return resolve_judge(_judge_spec(**settings))


def get_reward_funcs(names: Sequence[str], **settings: Any) -> list[RewardFn]:
    """Reward callables for `names` (keys of REWARDS, or "package.module:function" for your own), in order.

    >>> [f.__name__ for f in get_reward_funcs(["format", "accuracy"], gate="add")]
    ['format', 'accuracy']
    """
    s = check_settings(settings)
    spec = None
    out = []
    for name in names:
        if name in REWARDS:
            fn, keys, judge_arg = REWARDS[name]
            kwargs = {key: s[key] for key in keys}
            if judge_arg is not None:
                spec = spec if spec is not None else _judge_spec(**settings)
                kwargs[judge_arg] = spec
            out.append(RewardFn(name, fn, **kwargs))
        elif ":" in name:
            mod, _, attr = name.partition(":")
            out.append(RewardFn(attr, getattr(importlib.import_module(mod), attr)))
        else:
            raise KeyError(f"unknown reward {name!r}; known: {sorted(REWARDS)} (or 'package.module:function')")
    return out
