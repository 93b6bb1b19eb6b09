"""Caption text -> atomic events without an LLM: the offline stand-in for AutoDQ's first step, where DREAM-1K asks
an LLM to list at most 10 events of a description (Tarsier, Wang et al. 2024). Sentences are split at temporal
connectives, and at "and" between two clauses that each carry a verb the toy-world lexicon knows."""
from __future__ import annotations

import re

from vvkit.rewards.lexicon import SHAPES, facts

_SENT = re.compile(r"(?<=[.!?;])\s+|\n+")
_CLAUSE = re.compile(
    r",?\s+(?:and then|then|after that|afterwards|after which|followed by|before|while|meanwhile|finally|next)\s+"
    r"|,\s+and\s+|;\s*",
    re.IGNORECASE,
)
_LEAD_CONNECTIVE = re.compile(
    r"^(?:first(?:ly)?|second(?:ly)?|then|next|after that|afterwards|finally|lastly|meanwhile|eventually|"
    r"at first|in the end|at the end|and|but|so)\b[,\s]*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9']+")
_SUBORDINATE = re.compile(r"^((?:after|before|when|once|while|as soon as)\b[^,]+),\s*(.+)$", re.IGNORECASE | re.DOTALL)
_SUBJECT = re.compile(r"^(?:the|a|an)\s+(?:[a-z]+\s+)?(?:" + "|".join(SHAPES) + r")\b", re.IGNORECASE)
_IT = re.compile(r"^it\b", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_ASKS = re.compile(r"^(?:what|which|who|whose|why|how|where|does|do|did|is|are|can)\b", re.IGNORECASE)  # asked back
_TRAIL = re.compile(r"(?:\s+(?:and|then|but|so))+$", re.IGNORECASE)


def split_events(text: str | None, max_events: int = 10) -> list[str]:
    """Sentences, then clauses at temporal connectives (and at "and" between two clauses that each carry a known
    verb), leading connectives removed, and a leading "it" or bare verb given the previous subject; fragments under
    two words are dropped and at most `max_events` kept (DREAM-1K asks an LLM for <= 10 atomic events)."""
    if not text:
        return []
    events: list[str] = []
    subject = None
    for sent in _SENT.split(text.strip()):
        sub = _SUBORDINATE.match(sent)  # "After X, Y." is two events
        for clause in [c for part in (sub.groups() if sub else (sent,)) for c in _CLAUSE.split(part)]:
            for piece in _split_and(clause):
                piece = _tidy(piece)
                m = _SUBJECT.match(piece)
                if m:
                    subject = m.group(0)
                elif subject and _IT.match(piece):
                    piece = _IT.sub(subject, piece, count=1)
                elif subject and not facts(piece).shapes and facts(" ".join(piece.split()[:2])).actions:
                    piece = f"{subject} {piece}"  # "... and becomes smaller": the verb's subject is the last one
                if n_words(piece) >= 2:
                    events.append(piece)
    return events[:max_events]


def _tidy(clause: str) -> str:
    clause = clause.strip(" \t,.;:!?")
    while True:
        stripped = _TRAIL.sub("", _LEAD_CONNECTIVE.sub("", clause)).strip(" ,")
        if stripped == clause:
            return clause
        clause = stripped


def _split_and(clause: str) -> list[str]:
    """Split at "and" only where both sides carry a verb the lexicon knows ("X enters and Y moves", not "X and Y
    collide")."""
    parts = _AND.split(clause)
    if len(parts) == 1:
        return parts
    out = [parts[0]]
    for nxt in parts[1:]:
        if facts(out[-1]).actions and facts(nxt).actions:
            out.append(nxt)
        else:
            out[-1] = f"{out[-1]} and {nxt}"
    return out


def is_question(event: str) -> bool:
    """Whether an event asks a question back ("what colour is it?"): judges ignore those."""
    return bool(_ASKS.match(event))


def n_words(text: str) -> int:
    """Words (letters, digits, apostrophes) in `text`."""
    return len(_WORD.findall(text))
