"""One answer parser for rewards and evaluation: `<think>…</think><answer>…</answer>` splitting, solution unwrapping
and option-letter extraction (paper §4 format reward and MCQA letter matching; Video-R1 `format_reward`).

vvkit differs from the authors' code on purpose: the format check is a full match (nothing outside the two blocks,
no nested tags, neither block empty) unless `strict=False` asks for their start-anchored regex; and a multiple-choice
answer naming more than one distinct option earns nothing instead of whichever letter a heuristic met first.
"""
from __future__ import annotations

import re
import unicodedata
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


# ---- evaluation-side reading of any output (tagged or not) ----
# Evaluation reads every policy's answer, including base models that never write <think>/<answer> (the paper's
# baselines; lmms-eval's and VLMEvalKit's extractors read untagged text too). The reward does not use this: format is
# paid by `parse_completion` alone.

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_UNCLOSED = re.compile(r"<think>.*\Z", re.IGNORECASE | re.DOTALL)
_THINK_END = re.compile(r"</think>", re.IGNORECASE)
_ANSWER_ANY = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANY_TAG = re.compile(r"</?\s*(?:think|answer)\s*>", re.IGNORECASE)
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_EMPHASIS = re.compile(r"[*`~]+|(?<!\w)_+|_+(?!\w)")
_BARE_ONE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:)]?")
_LEADING = re.compile(r"(?:[(\[]\s*([A-Za-z])\s*[)\]]|([A-Za-z])\s*\)|([A-Z])\s*[.:])(?=\s)")
_ANSWER_PHRASE = re.compile(
    r"\b(?i:answer|option|choice)\b(?:\s+(?i:is)\b)?\s*:?\s*(?P<open>[(\[]?)\s*([A-Za-z])\s*(?P<close>[)\]]?)(?P<after>.?)",
    re.DOTALL)
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'\u2019\-])([A-Z])(?![A-Za-z0-9'\u2019\-])")
_ORDINARY_WORD = re.compile(r"\s+([a-z][a-z'\-]*)")
_END_PUNCT = " \t.,;:!?\"'"


def answer_parts(text: str) -> list[str]:
    """The parts of an output that carry its answer: complete `<think>…</think>` blocks (any case) dropped, an
    unclosed `<think>` dropped to the end, only what follows a stray `</think>` kept; then the content of every
    `<answer>` block (the last one read to the end when unclosed), or else the whole remaining text as one part."""
    t = _THINK_UNCLOSED.sub(" ", _THINK_BLOCK.sub(" ", text))
    ends = list(_THINK_END.finditer(t))
    if ends:
        t = t[ends[-1].end():]
    if not _ANSWER_OPEN.search(t):
        return [t]
    parts, last = [], 0
    for m in _ANSWER_ANY.finditer(t):
        parts.append(m.group(1))
        last = m.end()
    opened = _ANSWER_OPEN.search(t, last)
    if opened:  # unterminated: read to the end
        parts.append(t[opened.end():])
    return parts


def normalize_answer(s: str) -> str:
    """NFKC (full-width letters count), zero-width characters, markdown emphasis and leftover tags removed,
    whitespace collapsed."""
    s = unicodedata.normalize("NFKC", s)
    s = _ANY_TAG.sub(" ", _ZERO_WIDTH.sub("", s))
    return " ".join(_EMPHASIS.sub("", s).split())


def free_answer(text: Any) -> str | None:
    """The answer text of any output, for evaluation: the last `<answer>` block if there is one, else the output
    with its reasoning removed (see `answer_parts`); None when nothing is left."""
    parts = answer_parts(completion_text(text))
    out = normalize_answer(parts[-1]) if parts else ""
    return out or None


def mcq_choice(text: Any, options: list[str] | None = None) -> str | None:
    """The option letter any output commits to, or None for no answer or an ambiguous one (evaluation only; the
    reward keeps `parse_completion`'s strict format gate).

    Reads `answer_parts` (disagreeing <answer> blocks are ambiguous; an empty one is no answer), normalised, then in
    order: one bare letter (`b`, `(B)`, `B.`); a leading `B.` / `B)` / `(B) ` form, which wins over a contradicting
    option text; answer phrases (`answer` / `option` / `choice`, optional `is` or `:`, then the letter; a lowercase
    letter only at the end or before punctuation; several different letters are ambiguous); the text equal to one
    option's text; exactly one standalone capital option letter (an article `A` before an ordinary word is not one);
    exactly one option text contained as whole words.

    >>> opts = ["A. red square", "B. blue circle", "C. green triangle"]
    >>> [mcq_choice(t, opts) for t in ["b", "**B**", "The answer is B", "<think>A?</think>\\nC", "blue circle"]]
    ['B', 'B', 'B', 'C', 'B']
    >>> [mcq_choice(t, opts) for t in ["A or B", "<answer>A</answer><answer>B</answer>", "<think>B</think>", ""]]
    [None, None, None, None]
    """
    key = tuple(options) if options else None
    readings = {_read_choice(normalize_answer(p), key) for p in answer_parts(completion_text(text))}
    return readings.pop() if len(readings) == 1 else None


@lru_cache(maxsize=65536)
def _read_choice(s: str, options: tuple[str, ...] | None) -> str | None:
    if not s:
        return None
    allowed, pairs = _letters_and_texts(options)
    bare = _BARE_ONE.fullmatch(s)
    if bare:
        letter = bare.group(1).upper()
        return letter if letter in allowed else None
    lead = _LEADING.match(s)
    if lead:
        letter = next(g for g in lead.groups() if g).upper()
        if letter in allowed:
            return letter
    phrased = set()
    for m in _ANSWER_PHRASE.finditer(s):
        letter, after = m.group(2), m.group("after")
        if letter.isupper():
            ok = not after or not (after.isalnum() or after in "'\u2019-")
        else:  # "the answer is a cube" names no letter; "the answer is b." and "answer: (b)" do
            ok = not after or after in ".,;:!?)]" or bool(m.group("open") and m.group("close"))
        if ok:
            phrased.add(letter.upper())
    if phrased:
        return phrased.pop() if len(phrased) == 1 and next(iter(phrased)) in allowed else None
    flat = s.strip(_END_PUNCT).lower()
    equal = [letter for letter, t in pairs if t and flat == t.strip(_END_PUNCT).lower()]
    if len(set(equal)) == 1:
        return equal[0]
    letters = set()
    for m in _STANDALONE.finditer(s):
        letter = m.group(1)
        if letter not in allowed:
            continue
        if letter in "AI":  # the article 'A' / pronoun 'I' before an ordinary lowercase word is not a letter
            nxt = _ORDINARY_WORD.match(s, m.end())
            if nxt and nxt.group(1) not in _CONJ:
                continue
        letters.add(letter)
    if letters:
        return letters.pop() if len(letters) == 1 else None
    found = _text_matches(s, pairs)
    return found.pop() if len(found) == 1 else None
