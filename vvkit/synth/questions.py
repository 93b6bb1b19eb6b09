"""Question-answer pairs with known answers: toy-world perception questions (colour, shape, count, side, direction)
and event-order questions (first, before, after) that work on any timestamped event list. Multiple-choice options
are the answer plus distractors of the same type from the same world, shuffled so the correct letter is uniform.
The paper's VideoQA pool is NExT-QA-like multiple choice (§3); ours is generated so every answer is exact."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vvkit.prompts import QUESTIONS
from vvkit.schema import OPTION_LETTERS
from vvkit.synth.adapters import Event
from vvkit.synth.toyworld import COLOURS, DIRECTIONS, NUMBERS, SHAPES, SIDES, ToyVideo, state_at

WORD_FAMILIES = ("colour", "colour_first", "shape", "shape_first", "count", "enter_side", "direction", "turn_colour")
EVENT_FAMILIES = ("first_event", "after", "before")
FAMILIES = WORD_FAMILIES + EVENT_FAMILIES
DEFAULT_FAMILIES = {
    "simple": ("colour",),  # one strongly visual question whose answer is one content word
    # one shape: what it is, its colour, where it moves, what colour it turns (each answer one content word)
    # and what happens right before / after a named event (answered with one event sentence)
    "study": ("colour", "shape", "direction", "turn_colour", "after", "before"),
    "full": ("colour", "colour_first", "shape", "shape_first", "count", "enter_side", "direction", "turn_colour") + EVENT_FAMILIES,
}


@dataclass
class QA:
    """One question with its answer; `until` is the time (s) by which the video has shown everything needed."""

    family: str
    question: str  # open-ended form
    mcq_question: str
    answer: str  # a word, or an event phrase ("the red square moves up")
    open_answer: str  # the open-ended solution (the word, or the event as a sentence)
    distractors: list[str]
    until: float


def phrase(caption: str) -> str:
    """'The red square moves up.' -> 'the red square moves up' (option text / embedded in a question)."""
    c = caption.strip().rstrip(".")
    return c[0].lower() + c[1:] if c else c


def _word_qa(family: str, answer: str, vocab: tuple | list, until: float, **fmt) -> QA:
    open_q, mcq_q = (q.format(**fmt) for q in QUESTIONS[family])
    return QA(family, open_q, mcq_q, answer, answer, [w for w in vocab if w != answer], until)


def event_qa(events: list[Event], until: float | None = None, pool: list[str] | None = None,
             rng: np.random.Generator | None = None) -> list[QA]:
    """Order questions on the events that end by `until`: which happens first, what happens right before/after X.
    Distractors come from the same video first, then from `pool` (captions of other videos of the same split)."""
    rng = rng or np.random.default_rng(0)
    shown = [e for e in events if until is None or e.end <= until + 1e-9]
    texts = [phrase(e.caption) for e in events]
    counts = {t: texts.count(t) for t in texts}
    pool_phr = [phrase(p) for p in (pool or [])]

    def wrong(exclude: set[str]) -> list[str]:
        own = [t for t in dict.fromkeys(texts) if t not in exclude]
        extra = [t for t in dict.fromkeys(pool_phr) if t not in exclude and t not in own]
        return own + extra

    out: list[QA] = []
    if shown:  # open form: the first event; mcq form: which of four shown events comes first (else no mcq)
        idx = sorted(rng.choice(len(shown), min(4, len(shown)), replace=False))
        subset = [phrase(shown[i].caption) for i in idx]
        ok = len(set(subset)) == len(subset) == 4
        open_q, mcq_q = QUESTIONS["first_event"]
        out.append(QA("first_event", open_q, mcq_q, subset[0] if ok else phrase(shown[0].caption),
                      shown[0].caption, subset[1:] if ok else [], shown[idx[-1]].end if ok else shown[0].end))
    for k in range(len(shown) - 1):
        a, b = phrase(shown[k].caption), phrase(shown[k + 1].caption)
        if counts[a] == 1 and a != b:
            d = wrong({a, b})
            if len(d) >= 3:
                out.append(QA("after", *(q.format(event=a) for q in QUESTIONS["after"]), b, shown[k + 1].caption,
                              d, shown[k + 1].end))
        if counts[b] == 1 and a != b:
            d = wrong({a, b})
            if len(d) >= 3:
                out.append(QA("before", *(q.format(event=b) for q in QUESTIONS["before"]), a, shown[k].caption,
                              d, shown[k + 1].end))
    return out


def toy_qa(video: ToyVideo, until: float | None = None, pool: list[str] | None = None,
           rng: np.random.Generator | None = None) -> list[QA]:
    """Every question the toy video (up to `until`) can answer exactly. Families that need the whole video
    (count, a shape's only move) are left out when an event is cut by `until`."""
    until = video.duration if until is None else until
    shown = [e for e in video.events if e.end <= until + 1e-9]
    cut = any(e.start < until < e.end for e in video.events)
    n = len({a for e in shown for a in e.actors if e.kind == "enters"})
    out: list[QA] = []
    enters = [e for e in shown if e.kind == "enters"]
    if enters:
        first, i = enters[0], enters[0].actors[0]
        colour, kind = video.keys[i][0].colour, video.kinds[i]
        recoloured = any(e.kind == "turns" and i in e.actors for e in video.events if e.start < until)
        single = len(video.kinds) == 1
        if not recoloured:
            out.append(_word_qa("colour" if single else "colour_first", colour, list(COLOURS), first.end))
        out.append(_word_qa("shape" if single else "shape_first", kind, SHAPES, first.end))
    if n and not cut:
        out.append(_word_qa("count", NUMBERS[n - 1], NUMBERS, until))
    for e in enters:
        i = e.actors[0]
        desc = f"the {video.keys[i][0].colour} {video.kinds[i]}"
        out.append(_word_qa("enter_side", e.args["side"], SIDES, e.end, desc=desc))
    for i in range(len(video.kinds)):
        moves = [e for e in video.events if e.kind == "moves" and e.actors == [i] and e.start < until]
        if len(moves) == 1 and moves[0].end <= until + 1e-9:
            e = moves[0]
            desc = f"the {state_at(video.keys[i], e.start).colour} {video.kinds[i]}"
            out.append(_word_qa("direction", e.args["direction"], DIRECTIONS, e.end, desc=desc))
    for e in shown:
        if e.kind == "turns":
            desc = f"the {e.args['from']} {video.kinds[e.actors[0]]}"
            vocab = [c for c in COLOURS if c != e.args["from"]]
            out.append(_word_qa("turn_colour", e.args["to"], vocab, e.end, desc=desc))
    evs = [Event(e.start, e.end, e.caption, e.kind) for e in video.events]
    return out + event_qa(evs, until, pool, rng)


def to_mcq(qa: QA, rng: np.random.Generator, n_options: int = 4) -> tuple[str, list[str], str]:
    """(question, ['A. red', ...], letter): the answer plus n-1 distractors drawn from the QA's own list."""
    if len(qa.distractors) < n_options - 1:
        raise ValueError(f"{qa.family}: only {len(qa.distractors)} distractors for {n_options} options")
    picks = [qa.distractors[j] for j in rng.choice(len(qa.distractors), n_options - 1, replace=False)]
    choices = [qa.answer] + picks
    order = rng.permutation(n_options)
    choices = [choices[j] for j in order]
    letter = OPTION_LETTERS[int(np.where(order == 0)[0][0])]
    return qa.mcq_question, [f"{OPTION_LETTERS[k]}. {c}" for k, c in enumerate(choices)], letter


def pick(qas: list[QA], families: tuple[str, ...] | list[str], rng: np.random.Generator,
         mcq: bool = False, n_options: int = 4) -> QA | None:
    """A random QA among the allowed families (first a family uniformly, then a question of it); with `mcq`, only
    questions that have enough distractors for `n_options` options."""
    by_family: dict[str, list[QA]] = {}
    for q in qas:
        if q.family in families and (not mcq or len(q.distractors) >= n_options - 1):
            by_family.setdefault(q.family, []).append(q)
    if not by_family:
        return None
    fams = sorted(by_family)
    group = by_family[fams[int(rng.integers(len(fams)))]]
    return group[int(rng.integers(len(group)))]
