"""The difficulty filter (paper §3): before RL, sample k completions per row and drop the rows the starting policy
always gets right, since a group whose rewards are all equal has zero advantage and teaches nothing. Sampling goes
through the one generation loop (`vvkit.rollout`), scoring through the evaluation scorer (the rewards' parser and
judges)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from vvkit.rollout import sample_rows
from vvkit.schema import Row


def is_correct(text: str, row: Row, judge: Any = None, **settings: Any) -> bool:
    """Whether a completion answers the row correctly, by the evaluation scorer (same parser and judges as rewards)."""
    from vvkit.rewards import score_completion

    return bool(score_completion(text, row.to_dict(), judge, **settings)["correct"])


def filter_by_difficulty(policy: Any, rows: Sequence[Row], k: int = 5, temperature: float = 1.0,
                         frames: dict | None = None, judge: Any = None, max_new_tokens: int = 64,
                         correct: Callable[[str, Row], bool] | None = None) -> list[Row]:
    """Sample k completions per row and keep rows where fewer than k are correct. `policy` is a folder or a
    (model, processor) pair; `correct(text, row)` defaults to the evaluation scorer; kept rows carry
    `meta['difficulty'] = {k, correct}`."""
    from vvkit.model import load_policy

    model, processor = load_policy(policy) if isinstance(policy, (str, Path)) else policy
    samples = sample_rows(model, processor, rows, frames, n=k, temperature=temperature, max_new_tokens=max_new_tokens)
    check = correct or (lambda text, row: is_correct(text, row, judge))
    kept = []
    for row, texts in zip(rows, samples):
        n_correct = sum(bool(check(t, row)) for t in texts)
        if n_correct < k:
            row.meta = {**row.meta, "difficulty": {"k": k, "correct": n_correct}}
            kept.append(row)
    return kept
