"""DarkEventInfer (paper §1): black out one annotated event of a video and ask what happened in the dark.
The paper picks one random COIN event per video and masks exactly its annotated span; we do the same on any
`AnnotatedVideo`, with seedable bounds on the event's length and share of the clip and a minimum of visible
context on both sides (the paper's human filter removed samples that context could not explain; the bounds are our
automatic stand-in). The mask is stored lazily as row edits {"mask": [[start, end]]}.

Two checks matter on minutes-long real videos. Dense captions overlap (ActivityNet), so a span may not hide part of
a neighbouring event unless it hides that event whole. And the model sees only the frames the training frame
policy samples (16 uniform frames in the paper preset), so a short event of a long video often contains no sampled
frame and its mask is invisible: rows are kept only when the span covers at least `min_dark_frames` sampled frames.
We filter rather than move the sampled frames onto the span because training samples frames uniformly by one shared
policy (as the paper does), and a per-row placement would make the dark span's position a give-away."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vvkit.prompts import DARK_EVENT_PROMPT
from vvkit.schema import Row
from vvkit.synth.adapters import AnnotatedVideo, Event, sentence

NOMINAL_FPS = 30.0  # source rate assumed when a file is not probed (most YouTube uploads)


@dataclass
class DarkEventSettings:
    """Which events may be blacked out."""

    min_event_s: float = 1.0  # shorter events leave too little to infer
    max_event_s: float = 30.0
    max_share: float = 0.4  # the dark span may cover at most this share of the clip
    min_context_s: float = 1.0  # visible video required before and after the span
    skip_kinds: tuple[str, ...] = ("bounces",)  # toy-world verbs whose effect is invisible from the context
    policy: Any = None  # vvkit.video.FramePolicy the rows are trained with; None = no visibility check
    min_dark_frames: int = 1  # sampled frames the span must cover under `policy`


def sampled_times(policy: Any, times: np.ndarray) -> np.ndarray:
    """Timestamps of the frames `vvkit.video.read_video` samples from a video whose frames are at `times`
    (same rule: qwen-vl-utils frame count, then uniform rounded positions)."""
    from vvkit.video import smart_nframes

    times = np.asarray(times, float)
    if len(times) < 2:
        return times
    fps = len(times) / (times[-1] - times[0] + (times[1] - times[0]))
    duration = len(times) / fps
    n = smart_nframes(policy, duration, fps, len(times))
    return times[np.round(np.linspace(0, len(times) - 1, n)).astype(np.int64)]


def nominal_times(duration: float, fps: float = NOMINAL_FPS) -> np.ndarray:
    """Frame timestamps of an unprobed file: every 1/fps s over the annotated duration."""
    return np.arange(max(int(np.floor(duration * fps + 1e-6)), 1)) / fps


def dark_frames(sampled: np.ndarray, start: float, end: float) -> int:
    """How many sampled frames fall in [start, end) (the frames `read_video` blacks out)."""
    return int(((sampled >= start - 1e-6) & (sampled < end - 1e-6)).sum())


def _overlaps(a: Event, b: Event) -> bool:
    return a.start < b.end - 1e-6 and b.start < a.end - 1e-6


def event_reasons(video: AnnotatedVideo, s: DarkEventSettings, times: np.ndarray | None = None) -> list[str]:
    """Per event, why it cannot be blacked out ('' = eligible). `times` are the file's frame timestamps (probed),
    else nominal ones over the annotated duration."""
    sampled = None
    if s.policy is not None:
        sampled = sampled_times(s.policy, nominal_times(video.duration) if times is None else times)
    out = []
    for k, e in enumerate(video.events):
        length = e.end - e.start
        if not (s.min_event_s <= length <= s.max_event_s) or length > s.max_share * video.duration:
            out.append("event length")
        elif e.start < s.min_context_s or video.duration - e.end < s.min_context_s:
            out.append("too little context")
        elif e.kind and e.kind in s.skip_kinds:
            out.append("invisible kind")
        elif any(_overlaps(e, o) and not (o.start >= e.start - 1e-6 and o.end <= e.end + 1e-6)
                 for j, o in enumerate(video.events) if j != k):
            out.append("hides part of an overlapping event")
        elif sampled is not None and dark_frames(sampled, e.start, e.end) < s.min_dark_frames:
            out.append(f"fewer than {s.min_dark_frames} sampled frames in the span")
        else:
            out.append("")
    return out


def eligible_events(video: AnnotatedVideo, s: DarkEventSettings, times: np.ndarray | None = None) -> list[int]:
    """Indices of the events that satisfy the bounds (in time order)."""
    return [k for k, r in enumerate(event_reasons(video, s, times)) if not r]


def choose_event(video: AnnotatedVideo, rng: np.random.Generator, s: DarkEventSettings,
                 times: np.ndarray | None = None) -> int | None:
    """One eligible event drawn uniformly, or None when the video has none."""
    ok = eligible_events(video, s, times)
    return None if not ok else ok[int(rng.integers(len(ok)))]


def check_mask(span: tuple[float, float], duration: float, where: str) -> None:
    """A mask must lie inside the video: past the end of a shorter file it would black out nothing."""
    if not 0 <= span[0] < span[1] or span[1] > duration + 1e-6:
        raise ValueError(f"{where}: mask {list(span)} does not lie inside the video's {duration:.3f} s; fix the "
                         f"annotation's duration or drop the video")


def make_dark_event_row(video: AnnotatedVideo, rng: np.random.Generator, s: DarkEventSettings, row_id: str,
                        split: str = "train", source: str = "", times: np.ndarray | None = None) -> Row | None:
    """A DarkEventInfer row (problem_type 'dark_event'): solution = the hidden event's caption as a sentence; None
    if no event of the video fits the settings (the caller counts it, nothing is dropped silently). `times` are the
    file's frame timestamps when probed; a span past the file's end is an error."""
    k = choose_event(video, rng, s, times)
    if k is None:
        return None
    e = video.events[k]
    check_mask((e.start, e.end), video.duration, f"{video.path} (event {k})")
    if times is not None and len(times) > 1:
        check_mask((e.start, e.end), float(times[-1] + (times[1] - times[0])), f"{video.path} (event {k}, file)")
    before = [o for o in video.events[:k] if o.end <= e.start + 1e-6]
    after = [o for o in video.events[k + 1:] if o.start >= e.end - 1e-6]
    meta = {"video_id": video.id, "duration": video.duration, "event_index": k, "span": [e.start, e.end],
            "kind": e.kind, "num_events": len(video.events),
            "before": before[-1].caption if before else "", "after": after[0].caption if after else ""}
    if s.policy is not None:
        meta["dark_frames"] = dark_frames(sampled_times(s.policy, nominal_times(video.duration)
                                                        if times is None else times), e.start, e.end)
    return Row(id=row_id, video=video.path, problem=DARK_EVENT_PROMPT, solution=sentence(e.caption),
               problem_type="dark_event", edits={"mask": [[e.start, e.end]]}, source=source, split=split, meta=meta)
