"""Rule rewards that need no judge: format, multiple-choice letter, caption keywords, ROUGE, n-gram repetition.

Each is a plain function with TRL's reward signature (`completions` plus dataset columns by keyword) returning one
float per completion, or None where the row's `problem_type` is not a task the reward scores.
When the batch carries no `problem_type` column every row is scored, which is handy in a playground.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable, Sequence

from vvkit.rewards.parsing import completion_text, extract_choice, gt_letter, parse_completion, solution_text
from vvkit.schema import TASKS

FREE_TEXT_TASKS = ("open_ended", "caption", "dark_event", "mixvid")

# ---- batch plumbing shared by every reward ----


def texts_of(completions: Sequence[Any]) -> list[str]:
    """Completion strings (chat-message completions reduced to their last assistant turn)."""
    return [completion_text(c) for c in completions]


def column(kwargs: dict, name: str, n: int) -> list:
    """Dataset column `name` as a list of length n (all None when the batch does not carry it)."""
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"column {name!r} must be a list with one value per completion, got {type(values).__name__}")
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions; pass one per completion")
    return list(values)


def task_types(kwargs: dict, n: int) -> list[str | None]:
    """The `problem_type` column, checked against the schema's task names (a typo fails loudly, never scores 0)."""
    types = column(kwargs, "problem_type", n)
    for t in types:
        if t is not None and t not in TASKS:
            raise ValueError(f"problem_type {t!r} is not one of {TASKS} (see vvkit/schema.py)")
    return types


def applies(task: str | None, tasks: Iterable[str]) -> bool:
    """A reward scores a row when the row's task is one of its tasks, or when the batch has no task column."""
    return task is None or task in tasks


# ---- format (paper §4: the multiplicative gate) ----


def format_reward(completions: Sequence[Any], strict_format: bool = True, **kwargs: Any) -> list[float | None]:
    """1.0 for `<think>…</think><answer>…</answer>`, else 0.0 (paper §4; strict_format=True also rejects empty blocks
    and text outside them, which the authors' start-anchored regex lets through).

    >>> format_reward(["<think>one red square</think><answer>B</answer>", "B", "<think></think><answer>B</answer>"])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if parse_completion(t, strict_format).well_formed else 0.0 for t in texts_of(completions)]


# ---- multiple choice (paper §4 MCQA; Video-R1 exact letter match) ----


def mcq_score(answer: str | None, solution: Any, options: list[str] | None) -> float:
    """1.0 when the one letter the answer commits to is the ground-truth letter (see `extract_choice`)."""
    return 1.0 if extract_choice(answer, options) == gt_letter(solution) else 0.0


def mcq_reward(completions: Sequence[Any], solution: Sequence[Any] | None = None, strict_format: bool = True,
               **kwargs: Any) -> list[float | None]:
    """Letter match on mcq rows, ungated (paper §4 reads the letter by substring heuristics and takes the first hit;
    vvkit's `extract_choice` gives 0 to answers naming several letters).

    >>> mcq_reward(["<think>blue</think><answer>(B)</answer>", "<think>?</think><answer>A or B</answer>"],
    ...            solution=["B", "B"], problem_type=["mcq", "mcq"], options=[["A. red", "B. blue"]] * 2)
    [1.0, 0.0]
    """
    texts = texts_of(completions)
    n = len(texts)
    sols, opts, types = column({"solution": solution}, "solution", n), column(kwargs, "options", n), task_types(kwargs, n)
    return [
        mcq_score(parse_completion(t, strict_format).answer, s, o) if applies(k, ("mcq",)) else None
        for t, s, o, k in zip(texts, sols, opts, types)
    ]


# ---- caption keyword term (paper §4: +0.2 per temporal connective, capped at 0.4; -0.2 per hedge) ----

# The authors' lists, verbatim in content and order (VidBridge-R1 `src/open_r1_video/grpo.py::keywords_reward`):
# 29 temporal connectives and 38 hedges. vvkit matches them as whole words (case-insensitive, any whitespace inside a
# phrase); the authors match substrings, so there "may" also fires on "mayor" and "after" on "thereafter".
TEMPORAL_PHRASES = (
    "start with", "starts with", "then", "next", "after", "begin with", "begins with", "followed by", "following",
    "subsequently", "thereafter", "later", "initially", "first", "second", "third", "begin to", "begins to",
    "finally", "lastly", "to begin with", "as a starting point", "in the beginning", "at the outset", "once", "when",
    "whenever", "meanwhile", "simultaneously",
)
HEDGE_PHRASES = (
    "possibly", "suggesting", "likely", "appears to", "appearing", "designed to", "seems to", "might", "may", "could",
    "potentially", "presumably", "probably", "perhaps", "allegedly", "reportedly", "supposedly", "apparently",
    "arguably", "tentatively", "hypothetically", "theoretically", "in theory", "in some cases", "occasionally",
    "sometimes", "rarely", "unclear", "ambiguous", "vague", "speculative", "indicative of", "hinting at", "implying",
    "inferring", "open to interpretation", "subject to change", "not necessarily",
)
KEYWORD_STEP = 0.2
KEYWORD_CAP = 0.4


def _phrase_alternation(phrases: Iterable[str]) -> str:
    ordered = sorted(set(phrases), key=len, reverse=True)  # longest first: "after that" is one phrase, not two
    return "|".join(r"\s+".join(map(re.escape, p.split())) for p in ordered)


# one pass finds both kinds; whole words only (the authors' substring match fires "may" on "mayor")
_KEYWORDS = re.compile(r"(?<![a-z0-9'])(?:(?P<bad>" + _phrase_alternation(HEDGE_PHRASES) + r")|(?P<good>"
                       + _phrase_alternation(TEMPORAL_PHRASES) + r"))(?![a-z0-9'])")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def keyword_score(text: str | None, step: float = KEYWORD_STEP, cap: float = KEYWORD_CAP) -> float:
    """`step` per distinct temporal phrase up to `cap`; any hedge drops that bonus and costs `step` per distinct hedge
    (paper §4 keywords term; the authors match substrings, so "may" fires on "mayor": we match whole words)."""
    if not text:
        return 0.0
    good, bad = set(), set()
    for m in _KEYWORDS.finditer(text.lower()):
        if m.group("bad"):
            bad.add(_SPACE.sub(" ", m.group("bad")))
        else:
            good.add(_SPACE.sub(" ", m.group("good")))
    if bad:
        return -step * len(bad)
    return min(step * len(good), cap)


def keywords_reward(completions: Sequence[Any], strict_format: bool = True, tasks: Sequence[str] = ("caption",),
                    **kwargs: Any) -> list[float | None]:
    """Keyword term on the answer of caption rows, range [-0.2 x len(HEDGE_PHRASES), 0.4] (paper §4, whole words).

    >>> keywords_reward(["<think>x</think><answer>First it rolls, then it stops, finally it fades.</answer>",
    ...                  "<think>x</think><answer>The mayor may be waving.</answer>"])
    [0.4, -0.2]
    """
    texts = texts_of(completions)
    types = task_types(kwargs, len(texts))
    return [keyword_score(parse_completion(t, strict_format).answer) if applies(k, tasks) else None
            for t, k in zip(texts, types)]


# ---- ROUGE (Video-R1 free-form reward: mean of ROUGE-1/2/L F-measures) ----

ROUGE_VARIANTS = ("mean", "rouge1", "rouge2", "rougeL")
_ALNUM = re.compile(r"[a-z0-9]+")  # rouge-score's own tokenisation
_SCORER = None


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    from nltk.stem import porter  # the stemmer rouge-score's default tokenizer uses

    global _PORTER
    if _PORTER is None:
        _PORTER = porter.PorterStemmer()
    return _PORTER.stem(word)


_PORTER = None


@lru_cache(maxsize=65536)
def _tokens(text: str) -> tuple[str, ...]:
    from rouge_score import tokenize

    return tuple(tokenize.tokenize(text, _MemoStemmer))


class _MemoStemmer:
    """rouge-score's tokenisation with each word stemmed once per process (stemming is ~70% of ROUGE's cost)."""

    stem = staticmethod(_stem)


def _scorer():
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer, tokenizers

        class MemoTokenizer(tokenizers.Tokenizer):
            def tokenize(self, text: str) -> list[str]:
                return list(_tokens(text))

        _SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=MemoTokenizer())
    return _SCORER


@lru_cache(maxsize=65536)
def rouge_f(prediction: str, reference: str) -> tuple[float, float, float]:
    """(ROUGE-1, ROUGE-2, ROUGE-L) F-measures with stemming (rouge-score package, as Video-R1)."""
    if not prediction.strip() or not reference.strip():
        return 0.0, 0.0, 0.0
    s = _scorer().score(reference, prediction)
    return s["rouge1"].fmeasure, s["rouge2"].fmeasure, s["rougeL"].fmeasure


def rouge_score(prediction: str | None, reference: str, variant: str = "mean") -> float:
    """One ROUGE number in [0, 1]: `mean` of ROUGE-1/2/L (Video-R1; of ROUGE-1/L for one-word references) or one."""
    if variant not in ROUGE_VARIANTS:
        raise ValueError(f"rouge variant {variant!r} unknown; choose one of {ROUGE_VARIANTS}")
    r1, r2, rl = rouge_f(prediction or "", reference)
    if variant == "mean":  # one-word references have no bigram: Video-R1's mean would cap an exact answer at 2/3
        return (r1 + rl) / 2.0 if len(_ALNUM.findall(reference.lower())) < 2 else (r1 + r2 + rl) / 3.0
    return {"rouge1": r1, "rouge2": r2, "rougeL": rl}[variant]


def rouge_reward(completions: Sequence[Any], solution: Sequence[Any] | None = None, rouge_variant: str = "mean",
                 strict_format: bool = True, tasks: Sequence[str] = FREE_TEXT_TASKS,
                 **kwargs: Any) -> list[float | None]:
    """ROUGE of the answer against the solution on free-text rows, in [0, 1] (Video-R1 free-form reward; the paper
    judges these tasks with an LLM instead: use ROUGE as a cheap diagnostic or for `open_ended`).

    >>> rouge_reward(["<think>x</think><answer>the red square moves left</answer>"],
    ...              solution=["the red square moves left"], rouge_variant="rougeL")
    [1.0]
    """
    texts = texts_of(completions)
    n = len(texts)
    sols, types = column({"solution": solution}, "solution", n), task_types(kwargs, n)
    return [
        rouge_score(parse_completion(t, strict_format).answer, solution_text(s), rouge_variant)
        if applies(k, tasks) else None
        for t, s, k in zip(texts, sols, types)
    ]


# ---- n-gram repetition (open-r1 `get_repetition_penalty_reward`, after Yeo et al. 2025 appendix) ----


def repetition_score(text: str, ngram: int = 3, max_penalty: float = -1.0) -> float:
    """`max_penalty` x (1 - distinct n-grams / n-grams) over lower-cased words; texts shorter than n score 0."""
    if max_penalty > 0:
        raise ValueError(f"repetition max_penalty must be <= 0, got {max_penalty}")
    words = text.lower().split()
    total = len(words) - ngram + 1
    if total <= 0:
        return 0.0
    distinct = len(set(zip(*(words[i:] for i in range(ngram)))))
    return (1.0 - distinct / total) * max_penalty + 0.0  # + 0.0 turns -0.0 into 0.0


def repetition_reward(completions: Sequence[Any], repetition_ngram: int = 3, repetition_max_penalty: float = -1.0,
                      **kwargs: Any) -> list[float | None]:
    """Penalty in [repetition_max_penalty, 0] for repeated word n-grams over the whole completion, on every row
    (open-r1; the paper has none, its only length pressure is caption precision).

    >>> repetition_reward(["a b c d", "go go go go go"], repetition_ngram=2)
    [0.0, -0.75]
    """
    return [repetition_score(t, repetition_ngram, repetition_max_penalty) for t in texts_of(completions)]
