"""The toy world: small procedurally rendered videos of coloured shapes following a timed script of events, with
exact ground truth (events with start/end seconds and one-sentence captions). It stands in for the paper's real
sources (COIN, Kinetics; §1-§3) so the whole recipe can run offline on a CPU; unlike them, every answer is known by
construction and the vocabulary is small enough for a tiny tokenizer to give each word one token.

Scripts live here; `toyrender.py` draws them. Events never overlap in time, so "before", "after" and "first" are
unambiguous. Each colour is used by at most one shape in a video (a colour change picks an unused colour), so
"the red square" always names one shape."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vvkit.synth.adapters import AnnotatedVideo, Event

# ---- vocabulary (kept small and regular on purpose: one token per word for the tiny tokenizer) ----
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 70), "blue": (40, 80, 230),
    "yellow": (240, 210, 30), "white": (245, 245, 245), "purple": (150, 60, 200),
}
SHAPES = ("square", "circle", "triangle", "cross")
SIDES = ("left", "right", "top", "bottom")
DIRECTIONS = ("left", "right", "up", "down")
NUMBERS = ("one", "two", "three", "four")
BACKGROUNDS = ((96, 96, 96), (120, 120, 110), (84, 96, 108), (112, 100, 96))  # never black: black means "masked"
KINDS = ("enters", "moves", "turns", "grows", "shrinks", "rotates", "bounces", "collides", "leaves")
DIFFICULTIES = {
    # simple: one shape that keeps its colour: "What colour is the shape?" is answerable from any frame.
    "simple": dict(shapes=(1, 1), kinds=("moves", "grows", "shrinks", "rotates", "bounces")),
    # full: two or three shapes, every event kind, ordering questions.
    "full": dict(shapes=(2, 3), kinds=KINDS),
    # study: one shape whose every event leaves a visible trace in the frames after it (a move changes where the
    # shape is, a turn its colour, a grow or shrink its size), so a blacked-out event can be inferred from the
    # frames before and after the black span (DarkEventInfer, paper §1); rotations and bounces are left out
    # because a 56-pixel frame shows their end state too faintly.
    "study": dict(shapes=(1, 1), kinds=("moves", "turns", "grows", "shrinks")),
}
_DIR_VEC = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_SIDE_VEC = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}


@dataclass
class Key:
    """A shape's state at time t; between keys x, y, size, angle move linearly and colour holds the left key's."""

    t: float
    x: float
    y: float
    size: float
    angle: float
    colour: str


@dataclass
class ToyEvent:
    """One scripted event: its span, verb (`kind`), the shapes it involves and its caption sentence."""

    start: float
    end: float
    kind: str
    actors: list[int]
    caption: str
    args: dict = field(default_factory=dict)


@dataclass
class ToyVideo:
    """A script plus everything needed to render it again; `keys[i]` is shape i's keyframe track."""

    seed: int
    duration: float
    fps: float
    size: int
    background: tuple[int, int, int]
    texture: bool
    kinds: list[str]
    keys: list[list[Key]]
    events: list[ToyEvent]

    @property
    def num_frames(self) -> int:
        return int(round(self.duration * self.fps))

    def to_annotated(self, path: str, video_id: str) -> AnnotatedVideo:
        """The common event view used by DarkEventInfer, captioning and MixVidQA."""
        evs = [Event(e.start, e.end, e.caption, e.kind) for e in self.events]
        return AnnotatedVideo(id=video_id, path=path, duration=self.duration, events=evs,
                              meta={"format": "toyworld", "seed": self.seed})


def radius(kind: str, size: float) -> float:
    """Circumradius: the shape fits in a circle of this radius around its centre whatever its rotation."""
    return {"square": size * math.sqrt(2), "circle": size, "triangle": size,
            "cross": size * math.sqrt(1 + 1 / 9)}[kind]


def describe(kind: str, colour: str) -> str:
    return f"the {colour} {kind}"


def sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def state_at(track: list[Key], t: float) -> Key | None:
    """Interpolated state of one shape at time t, or None before it first appears."""
    if t < track[0].t:
        return None
    for a, b in zip(track, track[1:]):
        if a.t <= t < b.t:
            w = (t - a.t) / (b.t - a.t)
            lerp = lambda p, q: p + (q - p) * w  # noqa: E731
            return Key(t, lerp(a.x, b.x), lerp(a.y, b.y), lerp(a.size, b.size), lerp(a.angle, b.angle), a.colour)
    last = track[-1]
    return Key(t, last.x, last.y, last.size, last.angle, last.colour)


class _Scripter:
    """Draws a random event script; each `try_*` returns keys + caption or None when the event does not fit."""

    def __init__(self, rng: np.random.Generator, size: int, kinds: list[str], colours: list[str], spare: list[str]):
        self.rng, self.W, self.kinds = rng, float(size), kinds
        self.cur: list[Key | None] = [None] * len(kinds)  # None: not entered yet
        self.gone = [False] * len(kinds)
        self.colours, self.spare = list(colours), list(spare)
        self.margin = 2.0

    def fits(self, kind: str, x: float, y: float, size: float) -> bool:
        r = radius(kind, size) + self.margin
        return r <= x <= self.W - r and r <= y <= self.W - r

    def present(self) -> list[int]:
        return [i for i, k in enumerate(self.cur) if k is not None and not self.gone[i]]

    def _free_spot(self, i: int, size: float, tries: int = 20) -> tuple[float, float]:
        r = radius(self.kinds[i], size) + self.margin
        best, best_d = None, -1.0
        for _ in range(tries):
            x, y = self.rng.uniform(r, self.W - r, size=2)
            d = min([math.hypot(x - self.cur[j].x, y - self.cur[j].y) - radius(self.kinds[j], self.cur[j].size)
                     for j in self.present()] + [self.W])
            if d > best_d:
                best, best_d = (x, y), d
            if d > r + 4:
                break
        return best

    def enter(self, i: int, t0: float, t1: float, size: float):
        side = SIDES[self.rng.integers(4)]
        x1, y1 = self._free_spot(i, size)
        r = radius(self.kinds[i], size) + 1
        x0, y0 = {"left": (-r, y1), "right": (self.W + r, y1), "top": (x1, -r), "bottom": (x1, self.W + r)}[side]
        c = self.colours[i]
        keys = [Key(t0, x0, y0, size, 0.0, c), Key(t1, x1, y1, size, 0.0, c)]
        return keys, f"a {c} {self.kinds[i]} enters from the {side}", {"side": side}

    def clear(self, i: int, x: float, y: float, size: float) -> bool:
        """True when shape i at (x, y) would not overlap any other shape on screen (resting shapes stay apart)."""
        r = radius(self.kinds[i], size)
        return all(math.hypot(x - self.cur[j].x, y - self.cur[j].y) > r + radius(self.kinds[j], self.cur[j].size)
                   for j in self.present() if j != i)

    def move(self, i: int, t0: float, t1: float):
        k, kind = self.cur[i], self.kinds[i]
        r = radius(kind, k.size) + self.margin
        room = {"left": k.x - r, "right": self.W - r - k.x, "up": k.y - r, "down": self.W - r - k.y}
        ok = [d for d in DIRECTIONS if room[d] >= 0.2 * self.W]
        for d in [ok[j] for j in self.rng.permutation(len(ok))]:
            dist = self.rng.uniform(0.2 * self.W, min(0.45 * self.W, room[d]))
            dx, dy = _DIR_VEC[d]
            end = Key(t1, k.x + dx * dist, k.y + dy * dist, k.size, k.angle, k.colour)
            if self.clear(i, end.x, end.y, end.size):
                return [_at(k, t0), end], f"{describe(kind, k.colour)} moves {d}", {"direction": d}
        return None

    def bounce(self, i: int, t0: float, t1: float):
        k, kind = self.cur[i], self.kinds[i]
        r = radius(kind, k.size) + self.margin
        room = {"left": k.x - r, "right": self.W - r - k.x, "top": k.y - r, "bottom": self.W - r - k.y}
        ok = [s for s in SIDES if room[s] >= 0.15 * self.W]
        if not ok:
            return None
        s = ok[self.rng.integers(len(ok))]
        dx, dy = _SIDE_VEC[s]
        mid = Key((t0 + t1) / 2, k.x + dx * room[s], k.y + dy * room[s], k.size, k.angle, k.colour)
        return [_at(k, t0), mid, _at(k, t1)], f"{describe(kind, k.colour)} bounces off the {s} edge", {"side": s}

    def resize(self, i: int, t0: float, t1: float, grow: bool):
        k, kind = self.cur[i], self.kinds[i]
        new = k.size * (1.6 if grow else 0.6)
        if not (0.05 * self.W <= new <= 0.2 * self.W) or not self.fits(kind, k.x, k.y, new) or (
                grow and not self.clear(i, k.x, k.y, new)):
            return None
        end = Key(t1, k.x, k.y, new, k.angle, k.colour)
        return [_at(k, t0), end], f"{describe(kind, k.colour)} {'grows' if grow else 'shrinks'}", {}

    def rotate(self, i: int, t0: float, t1: float):
        k, kind = self.cur[i], self.kinds[i]
        if kind == "circle":
            return None
        turn = math.pi if kind == "triangle" else math.pi / 4  # both end visibly different from the start
        end = Key(t1, k.x, k.y, k.size, k.angle + turn, k.colour)
        return [_at(k, t0), end], f"{describe(kind, k.colour)} rotates", {}

    def turn(self, i: int, t0: float, t1: float):
        if not self.spare:
            return None
        k, new = self.cur[i], self.spare.pop(0)
        mid = (t0 + t1) / 2
        keys = [_at(k, t0), Key(mid, k.x, k.y, k.size, k.angle, new), Key(t1, k.x, k.y, k.size, k.angle, new)]
        return keys, f"{describe(self.kinds[i], k.colour)} turns {new}", {"from": k.colour, "to": new}

    def leave(self, i: int, t0: float, t1: float):
        k, kind = self.cur[i], self.kinds[i]
        side = SIDES[self.rng.integers(4)]
        r = radius(kind, k.size) + 1
        x1, y1 = {"left": (-r, k.y), "right": (self.W + r, k.y), "top": (k.x, -r), "bottom": (k.x, self.W + r)}[side]
        end = Key(t1, x1, y1, k.size, k.angle, k.colour)
        return [_at(k, t0), end], f"{describe(kind, k.colour)} leaves through the {side}", {"side": side}

    def collide(self, i: int, j: int, t0: float, t1: float):
        a, b = self.cur[i], self.cur[j]
        ra, rb = radius(self.kinds[i], a.size), radius(self.kinds[j], b.size)
        d = math.hypot(b.x - a.x, b.y - a.y)
        gap = d - ra - rb - 1
        if gap < 0.15 * self.W:
            return None
        ux, uy = (b.x - a.x) / d, (b.y - a.y) / d
        ea = Key(t1, a.x + ux * gap / 2, a.y + uy * gap / 2, a.size, a.angle, a.colour)
        eb = Key(t1, b.x - ux * gap / 2, b.y - uy * gap / 2, b.size, b.angle, b.colour)
        cap = f"{describe(self.kinds[i], a.colour)} and {describe(self.kinds[j], b.colour)} collide"
        return ([_at(a, t0), ea], [_at(b, t0), eb]), cap, {}


def _at(k: Key, t: float) -> Key:
    return Key(t, k.x, k.y, k.size, k.angle, k.colour)


def generate(seed: int, difficulty: str = "full", size: int = 112, fps: float = 8.0,
             min_duration: float = 6.0, max_duration: float = 12.0, texture: bool = True) -> ToyVideo:
    """Draw one scripted toy video; the same arguments always give the same script (and so the same pixels)."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty {difficulty!r} unknown; use one of {list(DIFFICULTIES)}")
    preset = DIFFICULTIES[difficulty]
    rng = np.random.default_rng(seed)
    step = 1.0 / fps
    snap = lambda t: round(t / step) * step  # noqa: E731  (event boundaries on frame times)
    duration = snap(rng.uniform(min_duration, max_duration))
    n = int(rng.integers(preset["shapes"][0], preset["shapes"][1] + 1))
    palette = list(COLOURS)
    rng.shuffle(palette)
    kinds = [SHAPES[j] for j in rng.integers(len(SHAPES), size=n)]
    sc = _Scripter(rng, size, kinds, palette[:n], palette[n:] if "turns" in preset["kinds"] else [])
    keys: list[list[Key]] = [[] for _ in range(n)]
    events: list[ToyEvent] = []
    t = snap(rng.uniform(0.0, 0.5))
    while True:
        t1 = t + snap(rng.uniform(1.0, 2.0))
        if t1 > duration - 0.25:
            break
        waiting = [i for i in range(n) if sc.cur[i] is None]
        present = sc.present()
        out = None
        if waiting and (not present or rng.random() < 0.6):
            i = waiting[0]
            out = (i,) + sc.enter(i, t, t1, rng.uniform(0.07, 0.11) * size)
            kind = "enters"
        else:
            options = [k for k in preset["kinds"] if k != "enters"]
            if len(present) < 2:  # a shape may leave only while another stays on screen
                options = [k for k in options if k != "leaves"]
            for _ in range(8):
                kind = options[rng.integers(len(options))]
                if not present:
                    break
                i = present[rng.integers(len(present))]
                if kind == "collides":
                    others = [j for j in present if j != i]
                    if others:
                        j = others[rng.integers(len(others))]
                        res = sc.collide(i, j, t, t1)
                        if res:
                            out = ((i, j),) + res
                            break
                    continue
                res = {"moves": sc.move, "bounces": sc.bounce, "rotates": sc.rotate, "turns": sc.turn,
                       "leaves": sc.leave, "grows": lambda a, b, c: sc.resize(a, b, c, True),
                       "shrinks": lambda a, b, c: sc.resize(a, b, c, False)}[kind](i, t, t1)
                if res:
                    out = (i,) + res
                    break
        if out is None:
            t = t1  # nothing fitted: let time pass with everything still
            continue
        who, new_keys, caption, args = out
        actors = list(who) if isinstance(who, tuple) else [who]
        tracks = new_keys if isinstance(who, tuple) else (new_keys,)
        for a, tr in zip(actors, tracks):
            keys[a].extend(tr)
            sc.cur[a] = tr[-1]
            if kind == "leaves":
                sc.gone[a] = True
        events.append(ToyEvent(t, t1, kind, actors, sentence(caption), args))
        t = t1 + snap(rng.uniform(0.0, 0.4))
    used = [i for i in range(n) if keys[i]]  # a shape that never entered is dropped
    remap = {old: new for new, old in enumerate(used)}
    for e in events:
        e.actors = [remap[a] for a in e.actors]
    bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return ToyVideo(seed, duration, fps, size, bg, texture, [kinds[i] for i in used], [keys[i] for i in used], events)


def dense_caption(captions: list[str]) -> str:
    """Events joined with temporal connectives: 'First, ... Then, ... Finally, ...' (the caption task's target)."""
    if not captions:
        raise ValueError("dense_caption needs at least one event")
    if len(captions) == 1:
        return captions[0]
    conn = ["First,"] + [("Then," if k % 2 else "After that,") for k in range(1, len(captions) - 1)] + ["Finally,"]
    return " ".join(f"{c} {s[0].lower()}{s[1:]}" for c, s in zip(conn, captions))


def vocabulary_sentences() -> list[str]:
    """Every event caption the toy world can produce (all colours x shapes x verbs), for the tokenizer corpus."""
    out = []
    for kind in SHAPES:
        for c in COLOURS:
            d = describe(kind, c)
            out += [sentence(f"a {c} {kind} enters from the {s}") for s in SIDES]
            out += [sentence(f"{d} moves {m}") for m in DIRECTIONS]
            out += [sentence(f"{d} bounces off the {s} edge") for s in SIDES]
            out += [sentence(f"{d} leaves through the {s}") for s in SIDES]
            out += [sentence(f"{d} {v}") for v in ("grows", "shrinks", "rotates")]
            out += [sentence(f"{d} turns {c2}") for c2 in COLOURS if c2 != c]
            other = list(COLOURS)[(list(COLOURS).index(c) + 1) % len(COLOURS)]
            out.append(sentence(f"{d} and the {other} {SHAPES[(SHAPES.index(kind) + 1) % 4]} collide"))
    return out
