"""DarkEventInfer (paper §1): black out one annotated event of a video and ask what happened in the dark.
The paper picks one random COIN event per video and masks exactly its annotated span; we do the same on any
`AnnotatedVideo`, with seedable bounds on the event's length and share of the clip and a minimum of visible
context on both sides (the paper's human filter removed samples that context could not explain; the bounds are our
automatic stand-in). The mask is stored lazily as row edits {"mask": [[start, end]]}."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vvkit.prompts import DARK_EVENT_PROMPT
from vvkit.schema import Row
from vvkit.synth.adapters import AnnotatedVideo


@dataclass
class DarkEventSettings:
    """Which events may be blacked out."""

    min_event_s: float = 1.0  # shorter events leave too little to infer
    max_event_s: float = 30.0
    max_share: float = 0.4  # the dark span may cover at most this share of the clip
    min_context_s: float = 1.0  # visible video required before and after the span
    skip_kinds: tuple[str, ...] = ("bounces",)  # toy-world verbs whose effect is invisible from the context


def eligible_events(video: AnnotatedVideo, s: DarkEventSettings) -> list[int]:
    """Indices of the events that satisfy the bounds (in time order)."""
    out = []
    for k, e in enumerate(video.events):
        length = e.end - e.start
        if not (s.min_event_s <= length <= s.max_event_s) or length > s.max_share * video.duration:
            continue
        if e.start < s.min_context_s or video.duration - e.end < s.min_context_s:
            continue
        if e.kind and e.kind in s.skip_kinds:
            continue
        out.append(k)
    return out


def choose_event(video: AnnotatedVideo, rng: np.random.Generator, s: DarkEventSettings) -> int | None:
    """One eligible event drawn uniformly, or None when the video has none."""
    ok = eligible_events(video, s)
    return None if not ok else ok[int(rng.integers(len(ok)))]


def make_dark_event_row(video: AnnotatedVideo, rng: np.random.Generator, s: DarkEventSettings, row_id: str,
                        split: str = "train", source: str = "") -> Row | None:
    """A DarkEventInfer row (problem_type 'dark_event'): solution = the hidden event's caption; None if no event
    of the video fits the settings (the caller counts it, nothing is dropped silently)."""
    k = choose_event(video, rng, s)
    if k is None:
        return None
    e = video.events[k]
    return Row(
        id=row_id, video=video.path, problem=DARK_EVENT_PROMPT, solution=e.caption, problem_type="dark_event",
        edits={"mask": [[e.start, e.end]]}, source=source, split=split,
        meta={"video_id": video.id, "duration": video.duration, "event_index": k, "span": [e.start, e.end],
              "kind": e.kind, "num_events": len(video.events),
              "before": video.events[k - 1].caption if k > 0 else "",
              "after": video.events[k + 1].caption if k + 1 < len(video.events) else ""},
    )
