"""Rewards for GRPO on think/answer completions, and the scorer evaluation shares with them (paper §4).

Every reward has TRL's signature, `f(completions, **columns) -> list[float | None]`, None where the row's task is
not one it scores; `get_reward_funcs(names, **settings)` builds them by name. Judges: `OfflineJudge` (sentence
embeddings, default) and `HTTPJudge` (any OpenAI-compatible endpoint), with one interface.
"""
from vvkit.rewards.client import HTTPJudge, JudgeError
from vvkit.rewards.embedder import Embedder, get_embedder
from vvkit.rewards.events import split_events
from vvkit.rewards.judges import JudgeSpec, OfflineJudge, resolve_judge
from vvkit.rewards.parsing import (Parsed, completion_text, extract_choice, free_answer, gt_letter, mcq_choice,
                                   parse_completion, solution_text)
from vvkit.rewards.registry import (
    DEFAULT_SETTINGS, REWARDS, RewardConfig, RewardFn, get_reward_funcs, make_judge,
)
from vvkit.rewards.scorer import reward_settings, score_completion, score_rows
from vvkit.rewards.rule import (
    HEDGE_PHRASES, TEMPORAL_PHRASES, format_reward, keyword_score, keywords_reward, mcq_reward, repetition_reward,
    rouge_reward, rouge_score,
)
from vvkit.rewards.tasks import (
    accuracy_reward, caption_reward, dark_event_reward, gate, length_reward, mixvid_reward, open_ended_reward,
    score_batch,
)

__all__ = [
    "DEFAULT_SETTINGS", "HEDGE_PHRASES", "REWARDS", "TEMPORAL_PHRASES", "Embedder", "HTTPJudge", "JudgeError",
    "JudgeSpec", "OfflineJudge", "Parsed", "RewardConfig", "RewardFn", "accuracy_reward", "caption_reward", "completion_text",
    "dark_event_reward", "extract_choice", "format_reward", "gate", "get_embedder", "get_reward_funcs",
    "free_answer", "gt_letter", "keyword_score", "mcq_choice", "score_rows", "make_judge", "keywords_reward", "length_reward", "mcq_reward", "mixvid_reward",
    "open_ended_reward", "parse_completion", "repetition_reward", "resolve_judge", "rouge_reward",
    "reward_settings", "rouge_score", "score_batch", "score_completion", "split_events",
]
