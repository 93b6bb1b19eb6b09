"""One registry from reward names (as written in params YAML) to TRL reward callables (open-r1
`get_reward_funcs`, TRL `trl/scripts/grpo.py`).

Each callable is a `RewardFn`: a small class holding a module-level function and its settings, with `__name__` set
to the registry name, so it pickles into rollout workers and TRL logs it as `rewards/<name>/mean` (TRL unwraps a
`functools.partial` to the inner function's name, which would log `accuracy_reward` instead of `accuracy`).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from vvkit.fields import ConfigError, _f
from vvkit.rewards import rule, tasks
from vvkit.rewards.judges import JudgeSpec, resolve_judge
from vvkit.rundir import RunDir



@dataclass
class RewardConfig:
    """The shared `rewards` section: which rewards GRPO sums, how the format gate combines, which judge scores free
    text (paper §4). Notebooks 02, 03 and 04 all read it, so training and evaluation score the same way; a stage may
    override single keys with its own `rewards:` mapping. Field names are the keyword names of
    `vvkit.rewards.get_reward_funcs` and `vvkit.rewards.make_judge`, and of the reward functions that take them
    (`format_reward(strict_format=...)`, `length_reward(length_min=...)`): one name per setting."""

    reward_funcs: list = _f(["accuracy"], "Reward names (vvkit.rewards.REWARDS); the paper registers 'accuracy' only.")
    reward_weights: list | None = _f(None, "One weight per reward (TRL reward_weights); None = all 1.0.")
    gate: str = _f("multiply", "accuracy = format x task ('multiply', paper), format + task ('add', Video-R1) or task ('none').")
    strict_format: bool = _f(True, "Full-match format (no empty think, nothing outside the tags); False = the authors' regex.")
    open_ended_metric: str = _f("rouge_mean", "open_ended score: rouge_mean (Video-R1), rouge_l, embedding or judge.")
    caption_alpha: float = _f(0.5, "caption = AutoDQ recall + alpha x precision + keywords (paper: 0.5).")
    caption_keywords: bool = _f(True, "Add the keyword term (+0.2 per temporal connective up to 0.4, -0.2 per hedge).")
    rouge_variant: str = _f("mean", "The 'rouge' reward: mean of ROUGE-1/2/L, or rouge1 / rouge2 / rougeL.")
    length_min: int = _f(320, "Length control: bonus when a correct completion has at least this many tokens.")
    length_max: int = _f(512, "Length control: ... and at most this many tokens (Video-R1: 320-512).")
    length_bonus: float = _f(0.2, "Length control bonus (Video-R1: 0.2).")
    length_min_correct: int = _f(2, "Length control applies when at least this many of a group are correct.")
    repetition_ngram: int = _f(3, "Repetition penalty: word n-gram size.")
    repetition_max_penalty: float = _f(-1.0, "Repetition penalty for an all-repeated completion (<= 0).")
    judge: str = _f("offline", "Judge for dark_event, mixvid, caption: 'offline' (embeddings) or 'http' (LLM endpoint).")
    judge_base_url: str | None = _f(None, "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (judge='http').")
    judge_model: str | None = _f(None, "Model name the endpoint serves, e.g. Qwen/Qwen2.5-72B-Instruct.")
    judge_api_key_env: str | None = _f(None, "Name of the environment variable holding the API key; None = no key.")
    judge_cache: str | None = _f(None, "sqlite file caching judge replies; None = <run_dir>/rewards/judge_cache.sqlite.")
    judge_timeout_s: float = _f(60.0, "Seconds per judge request before it is retried.")
    judge_max_retries: int = _f(3, "Retries per request (exponential backoff) before it counts as failed.")
    judge_concurrency: int = _f(8, "Judge requests in flight at once.")
    judge_on_error: str = _f("raise", "A failed or unparseable judge reply: 'raise', or 'count' (reward None, logged).")
    caption_judge: dict | None = _f(None, "Judge settings for captions (AutoDQ) over the ones above, e.g. {judge: http, "
                                          "judge_model: gpt-3.5-turbo}; None = one judge for every task (paper: "
                                          "Qwen2.5-72B-Instruct for DarkEventInfer / MixVidQA, GPT-3.5 for AutoDQ).")
    judge_dark_full: float = _f(0.6, "Offline judge: cosine for DarkEventInfer score 2 (with all facts stated).")
    judge_dark_partial: float = _f(0.4, "Offline judge: cosine for DarkEventInfer score 1.")
    judge_mixvid_threshold: float = _f(0.5, "Offline judge: cosine for a MixVidQA answer to count as true.")
    judge_entail_threshold: float = _f(0.5, "Offline judge: cosine for one caption event to entail another (AutoDQ).")
    judge_lexicon: bool = _f(True, "Offline judge: use the toy-world contradiction lexicon (colours, shapes, verbs).")

    def __post_init__(self) -> None:
        unknown = [n for n in self.reward_funcs if n not in REWARDS and ":" not in n]
        if unknown:
            raise ConfigError(f"rewards: unknown reward_funcs {unknown}; known: {sorted(REWARDS)}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ConfigError(f"rewards: {len(self.reward_weights)} reward_weights for "
                              f"{len(self.reward_funcs)} reward_funcs; give one weight per reward or null")
        try:
            check_settings(self.settings())
        except (KeyError, ValueError) as e:
            raise ConfigError(f"rewards: {e}") from None

    def settings(self, run_dir: str | None = None) -> dict[str, Any]:
        """Keyword settings for `get_reward_funcs` / `make_judge` (all fields but the reward list and weights); with
        `run_dir`, the judge cache defaults to the run's judge cache, one SQLite file per process (`RANK`), since
        SQLite's locks are not safe across the nodes of a network file system."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("reward_funcs", "reward_weights")}
        if d["judge_cache"] is None and run_dir:
            d["judge_cache"] = str(RunDir(run_dir).judge_cache_of(int(os.environ.get("RANK", "0") or 0)))
        return d


# Every setting a reward or judge takes, with its one default: RewardConfig's fields but the reward list and weights.
DEFAULT_SETTINGS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(RewardConfig)
                                    if f.name not in ("reward_funcs", "reward_weights")}

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
