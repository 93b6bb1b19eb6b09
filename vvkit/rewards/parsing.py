"""One answer parser for rewards and evaluation: `<think>…</think><answer>…</answer>` splitting, solution unwrapping
and option-letter extraction (paper §4 format reward and MCQA letter matching; Video-R1 `format_reward`).

vvkit differs from the authors' code on purpose: the format check is a full match (nothing outside the two blocks,
no nested tags, neither block empty) unless `strict=False` asks for their start-anchored regex; and a multiple-choice
answer naming more than one distinct option earns nothing instead of whichever letter a heuristic met first.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from vvkit.schema import option_letter, option_text

_TAG = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)
_STRICT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_PAPER = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)  # authors' re.match (paper §4)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OPEN_ANSWER = re.compile(r"<answer>(.*)\Z", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class Parsed(NamedTuple):
    """A completion split into its reasoning and its answer; `well_formed` is the format reward's verdict (immutable:
    parses are cached and shared)."""

    think: str | None
    answer: str | None  # text inside the last <answer> block (None when there is no <answer> tag at all)
    well_formed: bool


def completion_text(completion: Any) -> str:
    """Plain text of one TRL completion: a string, or a chat-message list whose last assistant turn is taken."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        for msg in reversed(completion):
            if isinstance(msg, dict) and msg.get("role", "assistant") == "assistant":
                return _content_text(msg.get("content", ""))
        return ""
    raise TypeError(
        f"completion of type {type(completion).__name__} is neither a string nor a list of chat messages "
        "(TRL passes one of the two; pass `completions=[...]` as such)"
    )


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"]
    return "".join(p for p in parts if isinstance(p, str))


@lru_cache(maxsize=65536)
def parse_completion(text: str, strict: bool = True) -> Parsed:
    """Split `<think>…</think><answer>…</answer>`; strict = full match, non-empty blocks, no stray tags (paper §4 differs).

    >>> parse_completion("<think>red first</think> <answer>B</answer>")
    Parsed(think='red first', answer='B', well_formed=True)
    >>> parse_completion("<think></think><answer>B</answer>").well_formed  # empty reasoning is not free
    False
    >>> parse_completion("<think></think><answer>B</answer>", strict=False).well_formed  # the authors' regex
    True
    """
    t = text.strip()  # fast path for the common shape; anything unusual takes the regular expressions below
    if t.startswith("<think>") and t.endswith("</answer>"):
        i = t.find("</think>")
        j = t.find("<answer>", i + 8) if i > 0 else -1
        if j > 0 and not t[i + 8 : j].strip():
            think, answer = t[7:i].strip(), t[j + 8 : -9].strip()
            if "<" not in think and "<" not in answer and (not strict or (think and answer)):
                return Parsed(think, answer, True)
    return _parse_slow(text, strict)


def _parse_slow(text: str, strict: bool) -> Parsed:
    m = _STRICT.fullmatch(text)
    if m is not None:
        think, answer = m.group(1), m.group(2)
        clean = not _TAG.search(think) and not _TAG.search(answer)
        filled = bool(think.strip()) and bool(answer.strip())
        if clean and (filled or not strict):
            return Parsed(think.strip(), answer.strip(), True)
    well = (not strict) and bool(_PAPER.match(text))
    answers = _ANSWER.findall(text)
    if answers:
        answer: str | None = answers[-1].strip()
    else:
        opened = _OPEN_ANSWER.search(text)  # unterminated: the authors read it too (paper §4 MCQA)
        answer = opened.group(1).strip() if opened else None
    think_m = _THINK.search(text)
    return Parsed(think_m.group(1).strip() if think_m else None, answer, well)


def solution_text(solution: Any) -> str:
    """The bare ground truth: the schema stores it bare; the authors' released data wraps it in <answer> (paper §7)."""
    if solution is None:
        return ""
    s = str(solution)
    m = _ANSWER.search(s)
    return (m.group(1) if m else s).strip()


_LEAD = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*(?:[.):]|$)")  # B | (B) | B. | B) text | b.
_PHRASE = re.compile(  # keywords in any case, the letter itself a capital: "the answer is a cube" names no letter
    r"(?i:answer|option|choice)\s*(?i:is|:|=|would be|should be)?\s*[\(\[]?\s*([A-Z])(?![A-Za-z0-9'\-])"
)
_BOXED = re.compile(r"\\boxed\{\s*([A-Z])\s*\}|\{\s*([A-Z])\s*\}|[\(\[]\s*([A-Z])\s*[\)\]]")
_BARE = re.compile(r"(?<![A-Za-z0-9'\-])([A-Z])(?![A-Za-z0-9'\-])")
_WORD_AFTER = re.compile(r"\s+([a-z]+)")
_CONJ = frozenset({"or", "and", "nor", "vs", "versus", "to"})
_MD = re.compile(r"[*_`]")
DEFAULT_LETTERS = "ABCDEFGH"  # allowed letters when a row carries no options


@lru_cache(maxsize=4096)
def _gt_letter(s: str) -> str | None:
    m = _LEAD.match(s) or re.match(r"^\s*([A-Z])(?![A-Za-z])", s)
    return m.group(1).upper() if m else None


def gt_letter(solution: Any) -> str:
    """The ground-truth option letter: 'B', '(B)', 'B. blue' or '<answer>B</answer>' -> 'B' (paper §4 takes the first
    character; a solution that does not start with a letter is a data error, never a silent 0)."""
    letter = _gt_letter(solution_text(solution))
    if letter is None:
        raise ValueError(f"mcq solution {solution!r} does not start with an option letter; store the bare letter, e.g. 'B'")
    return letter


def _letters_and_texts(options: Any) -> tuple[str, list[tuple[str, str]]]:
    if not options:
        return DEFAULT_LETTERS, []
    pairs = [(option_letter(o).upper(), option_text(o)) for o in options]
    return "".join(p[0] for p in pairs), pairs


def extract_choice(answer: str | None, options: list[str] | None = None) -> str | None:
    """The one option letter an answer commits to, else None (several letters, e.g. 'A or B', is no answer at all).

    Explicit letter mentions win (`B`, `(B)`, `B.`, `B) red`, `The answer is B`); failing those, the answer is matched
    against each option's text as whole words, case-insensitively, preferring the longest matching text.

    >>> opts = ["A. red square", "B. blue circle", "C. green triangle"]
    >>> [extract_choice(a, opts) for a in ["B", "(B)", "B) blue circle", "The answer is B", "a Blue Circle"]]
    ['B', 'B', 'B', 'B', 'B']
    >>> [extract_choice(a, opts) for a in ["A or B", "A B C", "purple", ""]]
    [None, None, None, None]
    """
    if not answer:
        return None
    key = tuple(options) if options else None
    return _extract_choice_cached(answer, key)


@lru_cache(maxsize=65536)
def _extract_choice_cached(answer: str, options: tuple[str, ...] | None) -> str | None:
    allowed, pairs = _letters_and_texts(options)
    s = _MD.sub("", answer).strip()
    if not s:
        return None
    mentions = _letter_mentions(s, allowed)
    if mentions:
        return mentions.pop() if len(mentions) == 1 and next(iter(mentions)) in allowed else None
    found = _text_matches(s, pairs)
    return found.pop() if len(found) == 1 else None


def _letter_mentions(s: str, allowed: str) -> set[str]:
    """Every letter the answer names explicitly (leading form, 'answer is X', (X)/{X}/\\boxed{X}, bare capitals)."""
    found: set[str] = set()
    lead = _LEAD.match(s)
    if lead:
        found.add(lead.group(1).upper())
    found.update(m.group(1).upper() for m in _PHRASE.finditer(s))
    for m in _BOXED.finditer(s):
        found.add(next(g for g in m.groups() if g))
    for m in _BARE.finditer(s):
        letter = m.group(1)
        if letter not in allowed:
            continue
        if letter in "AI":  # the article 'A' / the pronoun 'I' followed by an ordinary word is not a letter
            nxt = _WORD_AFTER.match(s, m.end())
            if nxt and nxt.group(1) not in _CONJ:
                continue
        found.add(letter)
    return found


def _text_matches(s: str, pairs: list[tuple[str, str]]) -> set[str]:
    """Letters whose option text occurs as whole words; a match inside a longer matching option's text is dropped."""
    spans: list[tuple[int, int, str]] = []
    low = s.lower()
    for letter, text in pairs:
        t = text.strip().lower()
        if not t:
            continue
        for m in re.finditer(r"(?<![a-z0-9])" + re.escape(t) + r"(?![a-z0-9])", low):
            spans.append((m.start(), m.end(), letter))
    keep = {
        letter
        for a, b, letter in spans
        if not any(a2 <= a and b <= b2 and (b2 - a2) > (b - a) for a2, b2, _ in spans)
    }
    return keep
