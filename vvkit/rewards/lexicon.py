"""A small contradiction lexicon for the toy world (vvkit/synth/toyworld.py): the offline judges' guard against
the failure of sentence embeddings that matters most here, "moves left" vs "moves right" scoring 0.99.

Each text is reduced to `Facts`: colours and shapes named, the action classes (enter, leave, move, bounce, grow,
shrink, rotate, recolour, collide), directions, and the target colour of "turns <colour>". An LLM judge reads
meaning; this reads a fixed vocabulary, so it only knows the toy world's verbs and their common synonyms.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache

COLOURS = ("red", "green", "blue", "yellow", "white", "purple", "orange", "pink", "black", "brown", "cyan",
           "magenta", "grey", "gray")
SHAPES = {"square": "square", "box": "square", "circle": "circle", "ball": "circle", "disc": "circle",
          "disk": "circle", "dot": "circle", "triangle": "triangle", "cross": "cross", "plus": "cross",
          "star": "star", "rectangle": "rectangle", "diamond": "diamond"}
_COL = "|".join(COLOURS)
# Order matters: a phrase matched by an earlier class is blanked before later classes look ("moves in" = enter).
ACTIONS: tuple[tuple[str, str], ...] = (
    ("recolour", rf"\b(?:turn(?:s|ed|ing)?|becom(?:es|e|ing)|chang(?:es|ed|ing|e)\s+(?:its\s+)?colou?rs?\s+to)"
                 rf"\s+(?:{_COL})\b|\bchang(?:es|ed|ing|e)\s+(?:its\s+|their\s+)?colou?rs?\b|\brecolou?r\w*"
                 r"|\bcolou?r\s+(?:chang|switch)\w*"),
    ("enter", r"\b(?:enter\w*|appear\w*|arriv\w*|(?:come|comes|came|coming|mov\w+|slid\w+)\s+in(?:to)?)\b"),
    ("leave", r"\b(?:leav\w*|exit\w*|disappear\w*|vanish\w*|(?:go|goes|went|going|mov\w+|slid\w+)\s+(?:out|off|away)\b)"),
    ("rotate", r"\b(?:rotat\w*|spin\w*|spun|twirl\w*"
               r"|turn\w*\s+(?:around|round|over|clockwise|counterclockwise|anticlockwise))\b"),
    ("bounce", r"\b(?:bounc\w*|rebound\w*|hop\w*|jump\w*|hit\w*\s+the\s+(?:\w+\s+){0,2}(?:edge|wall|side|border))\b"),
    ("grow", r"\b(?:grow\w*|grew|expand\w*|enlarg\w*|bigger|larger|swell\w*)\b"),
    ("shrink", r"\b(?:shrink\w*|shrank|shrunk\w*|contract\w*|smaller)\b"),
    ("resize", r"\b(?:chang\w*\s+(?:its\s+)?size|size\s+chang\w*|resiz\w*)\b"),
    ("collide", r"\b(?:collid\w*|collision\w*|hit|hits|hitting|bump\w*|crash\w*|touch\w*|meet\w*|met|strik\w*"
                r"|run\w*\s+into|ran\s+into)\b"),
    ("move", r"\b(?:mov\w*|slid\w*|travel\w*|drift\w*|glid\w*|roll\w*|shift\w*)\b"),
)
_ACTIONS = tuple((name, re.compile(p)) for name, p in ACTIONS)
COMPATIBLE = {"resize": {"grow", "shrink"}}  # a vaguer verb that does not contradict the precise ones
DIRECTIONS = {"left": "left", "leftward": "left", "leftwards": "left", "right": "right", "rightward": "right",
              "rightwards": "right", "up": "up", "upward": "up", "upwards": "up", "top": "up", "upper": "up",
              "down": "down", "downward": "down", "downwards": "down", "bottom": "down", "lower": "down"}
NUMBERS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "0": "0", "1": "1", "2": "2", "3": "3", "4": "4", "5": "5", "6": "6"}
_WORDS = re.compile(r"[a-z0-9]+")
# Words that carry no event content in toy-world answers; with the classes above they make the lexicon's vocabulary.
# A text using no other word is parsed completely, so the lexicon alone can judge it.
FUNCTION_WORDS = frozenset("""
a an the this that these those it its itself they them their there here one another other each both all some any
is are was were be been being becomes become becoming has have had gets get got getting goes go went does do
did will would keeps keep
and or but then so also again back just very slightly bit little lot quite much more first second third last next
finally after before while when once later meanwhile afterwards eventually
in into on onto off out of from to toward towards through across over under around along at by with within near
away past beside between behind above below edge edges side sides corner frame screen video clip scene shape shapes
object objects place position size colour color its same new
""".split())
_TURNS = re.compile(rf"\b(?:turn\w*|becom\w*|to)\s+(?:the\s+colou?r\s+)?({_COL})\b")


@dataclass(frozen=True)
class Facts:
    """What a text asserts, in the lexicon's terms."""

    colours: frozenset[str]
    shapes: frozenset[str]
    actions: frozenset[str]
    directions: frozenset[str]
    new_colours: frozenset[str]  # targets of "turns <colour>"
    numbers: frozenset[str] = frozenset()  # counts, as digits
    unknown: frozenset[str] = frozenset()  # words outside the lexicon: when empty, this reading is complete

    @property
    def named(self) -> frozenset[str]:
        """Every fact as one set of tagged strings, for overlap tests."""
        return frozenset(f"{k}:{v}" for k in ("colours", "shapes", "actions", "directions", "new_colours", "numbers")
                         for v in getattr(self, k))


_CONTENT = frozenset(COLOURS) | frozenset(SHAPES) | frozenset(DIRECTIONS)


def _piece(w: str) -> bool:
    return w in _CONTENT or w in FUNCTION_WORDS or any(p.fullmatch(w) for _, p in _ACTIONS)


def _split(word: str) -> list[str] | None:
    """`word` as two or more lexicon words of at least 3 letters, one of them a colour, shape or direction
    ("whitetriangle" -> white triangle, "movesleft" -> moves left); None when it is no such run."""
    if word in _CONTENT or word in FUNCTION_WORDS or len(word) < 6:
        return None
    best: dict[int, list[str]] = {0: []}
    for end in range(3, len(word) + 1):
        for start in range(0, end - 2):
            if start in best and _piece(word[start:end]) and (end - start) < len(word):
                best[end] = best[start] + [word[start:end]]
                break
    parts = best.get(len(word))
    return parts if parts and len(parts) > 1 and any(w in _CONTENT for w in parts) else None


def unglue(text: str) -> str:
    """Words run together read as the words they join, as a human or LLM judge reads them: a policy that writes
    "the whitetriangle" says "the white triangle", and may not slip past the lexicon into the embedding fallback."""
    return _WORDS.sub(lambda m: " ".join(_split(m.group()) or [m.group()]), text)


@lru_cache(maxsize=65536)
def facts(text: str) -> Facts:
    """The lexicon's reading of one text (lower-cased, whole words; words run together read as their parts)."""
    low = unglue(text.lower())
    acts, rest = set(), low
    for name, pat in _ACTIONS:
        if pat.search(rest):
            acts.add(name)
            rest = pat.sub(" ", rest)
    words = _WORDS.findall(low)
    new = frozenset(_TURNS.findall(low)) if "recolour" in acts else frozenset()
    return Facts(
        colours=frozenset(w for w in words if w in COLOURS) - new,
        shapes=frozenset(SHAPES[w.rstrip("s")] if w.rstrip("s") in SHAPES else SHAPES[w] for w in words
                         if w in SHAPES or w.rstrip("s") in SHAPES),
        actions=frozenset(acts),
        directions=frozenset(DIRECTIONS[w] for w in words if w in DIRECTIONS),
        new_colours=new,
        numbers=frozenset(NUMBERS[w] for w in words if w in NUMBERS),
        unknown=frozenset(w for w in _WORDS.findall(rest) if not _known(w)),
    )


EMPTY = Facts(*(frozenset(),) * 7)


def _known(w: str) -> bool:
    return (w in FUNCTION_WORDS or w in COLOURS or w in SHAPES or w.rstrip("s") in SHAPES or w in DIRECTIONS
            or w in NUMBERS)


def _classes(f: Facts) -> tuple[tuple[frozenset[str], str], ...]:
    return ((f.colours, "colours"), (f.shapes, "shapes"), (f.new_colours, "new_colours"), (f.directions, "directions"),
            (f.numbers, "numbers"))


def contradicts(pred: str, ref: str, question: str | None = None) -> bool:
    """True when `pred` (one event) names a colour, shape, action, direction or target colour of a kind the
    reference names, but not one the reference names ("moves right" vs "moves left"; "grows" vs "moves").
    Colours and shapes named by the question count as the reference's (MixVidQA: an answer about the other clip's
    shape is wrong even when the reference is just "up")."""
    p, r = facts(pred), facts(ref)
    if question:
        q = facts(question)
        r = dataclasses.replace(r, colours=r.colours | q.colours, shapes=r.shapes | q.shapes)
    for (pv, _), (rv, _) in zip(_classes(p), _classes(r)):
        if rv and (pv - rv):
            return True
    if r.actions:
        for act in p.actions - r.actions:
            if not (COMPATIBLE.get(act, set()) & r.actions):
                return True
    return False


def covers(pred_facts: Facts, ref: str, question: str | None = None) -> bool:
    """True when the answer states every fact of the reference that the question did not already give."""
    r = facts(ref)
    q = facts(question) if question else EMPTY
    for (pv, _), (rv, _), (qv, _) in zip(_classes(pred_facts), _classes(r), _classes(q)):
        if (rv - qv) - pv:
            return False
    return not ((r.actions - q.actions) - pred_facts.actions)


def overlaps(pred_facts: Facts, ref: str) -> bool:
    """True when the answer states at least one fact of the reference (a vaguer verb counts for a precise one)."""
    r = facts(ref)
    if pred_facts.named & r.named:
        return True
    return any(COMPATIBLE.get(a, set()) & r.actions for a in pred_facts.actions)


def only_who(pred_facts: Facts, ref: str) -> bool:
    """True when a reference the lexicon reads completely names what happened (an action, a direction, a new colour)
    and the answer names none of the reference's: "the red square" (or "the redt, a red") for "the red square moves
    left" says nothing of the event, however close its embedding is to the subject's; nor does "the red. Finally, the
    bottom." for "the red square turns purple" (a place the event does not speak of)."""
    r = facts(ref)
    event = dataclasses.replace(pred_facts, colours=frozenset(), shapes=frozenset(), numbers=frozenset())
    return not overlaps(event, ref) and not r.unknown and bool(r.actions or r.directions or r.new_colours)


def merge(items: list[Facts]) -> Facts:
    """The facts of several events together."""
    return Facts(*(frozenset().union(*(getattr(f, name) for f in items)) for name in Facts.__dataclass_fields__))
