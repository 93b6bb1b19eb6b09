"""The one scorer: completions against their rows with the run's reward settings (paper §4, §6). Training's rewards,
evaluation, the difficulty filter and the notebooks' before/after tables all score through here, so an open-ended
answer judged in GRPO is judged, not ROUGE-scored, everywhere else. The settings are a required argument: there is no
second set of defaults to fall back on (they live in `RewardConfig` alone)."""
from __future__ import annotations

from typing import Any, Sequence

from vvkit.rewards.registry import RewardConfig, check_settings, make_judge
from vvkit.rewards.rule import task_types, texts_of
from vvkit.rewards.tasks import gate, score_batch

# The settings of the `rewards` section that shape a score (the rest pick rewards or configure the judge).
SCORE_SETTINGS = ("strict_format", "open_ended_metric", "caption_alpha", "caption_keywords")


def reward_settings(rewards: RewardConfig | dict) -> dict[str, Any]:
    """Every reward setting, defaults filled in from `RewardConfig` (a RewardConfig or a mapping of its fields)."""
    if isinstance(rewards, RewardConfig):
        return rewards.settings()
    if not isinstance(rewards, dict):
        raise TypeError(f"rewards must be a RewardConfig or a mapping of its settings, got {type(rewards).__name__}")
    return check_settings({k: v for k, v in rewards.items() if k not in ("reward_funcs", "reward_weights")})


def score_rows(texts: Sequence[Any], rows: Sequence[Any], rewards: RewardConfig | dict, judge: Any = None,
               reading: str = "any") -> list[dict]:
    """Per completion: format, answer, task score, `correct`, the gated `reward` (the run's `gate`) and task details.

    `rows` are `Row` objects or row dicts, one per completion. `judge` defaults to the one the settings name
    (`make_judge`). `reading="any"` (evaluation: every policy, base models included, as lmms-eval and VLMEvalKit
    read them) takes answers outside <answer> tags; `"tagged"` reads the <answer> block only, as the rewards do."""
    gets = [r.get if isinstance(r, dict) else (lambda k, d=None, r=r: getattr(r, k, d)) for r in rows]
    if len(gets) != len(texts):
        raise ValueError(f"{len(texts)} completions for {len(rows)} rows; pass one row per completion")
    s = reward_settings(rewards)
    judge = judge if judge is not None else make_judge(**s)
    metas = [g("meta") or {} for g in gets]
    recs = score_batch(texts_of(texts), [g("solution") for g in gets],
                       task_types({"problem_type": [g("problem_type") for g in gets]}, len(gets)),
                       [g("options") for g in gets], [g("problem") for g in gets], judge, reading=reading,
                       sources=[g("source") for g in gets], ref_events=[m.get("events") for m in metas],
                       **{k: s[k] for k in SCORE_SETTINGS})
    for rec in recs:
        rec["reward"] = gate(rec["format"], rec["score"], s["gate"])
    return recs


def score_completion(text: Any, row: Any, rewards: RewardConfig | dict, judge: Any = None,
                     reading: str = "tagged") -> dict:
    """One completion scored as GRPO scores it (`score_rows` for one row, the <answer> block only by default)."""
    return score_rows([text], [row], rewards, judge, reading)[0]
