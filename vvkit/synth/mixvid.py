"""MixVidQA (paper §2): two clips cut into chunks of 1.5-2.0 s and interleaved A B A B ..., with a question about
one clip only. The paper interleaves ~10 s Kinetics clips and asks a VLM-written question about one of them; here
each clip keeps its own timeline (chunk k of A continues where chunk k-1 of A stopped), the clip that starts is
random, alternation is strict, and the question is picked so that its answer differs between the two clips (or does
not exist in the other one), so answering about the wrong clip is wrong. The edit is stored lazily as
{"interleave": [[source_idx, start, end], ...]} with `video = [path_a, path_b]`.

Each source is first cut to a clip of `clip_s` seconds (10 s, as the paper's Kinetics clips; random, seedable start)
so two long videos never interleave until one runs out. The question names the clip by its content where the
source QA allows (the paper's questions do: "What is the boy's focus during the video?"); questions that cannot
(toy-world colour questions, "what happens first") name it by position ("the clip shown first") and speak of
"this clip", never of the mixed video. A list of clips with their own QA (Kinetics-style: video, question, answer)
is a MixVidQA source as well as event-order questions from dense captions."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from vvkit.prompts import MIXVID_ORDERS, mixvid_problem
from vvkit.schema import Row
from vvkit.synth.adapters import AnnotatedVideo, Event
from vvkit.synth.questions import QA, pick


@dataclass
class MixVidSettings:
    """Chunking of the two sources."""

    min_chunk_s: float = 1.5
    max_chunk_s: float = 2.0
    min_chunks: int = 4  # at least two chunks of each clip, so the alternation is visible
    clip_s: float | None = 10.0  # each source is cut to a clip this long first (paper: ~10 s); None = whole video
    cue: str = "auto"  # how the question names its clip: 'position', 'content', or 'auto' (content when it can)


CUES = ("auto", "position", "content")
# Task text for a question that names its clip by content (the paper's MixVidQA questions); the positional form is
# vvkit.prompts.MIXVID_PROMPT.
MIXVID_CONTENT_PROMPT = ("This video alternates between two different clips. The question is about one of them: "
                         "answer it from that clip only, ignoring the other. {question}")
CONTENT_FAMILIES = ("after", "before", "clip_qa")  # questions that name an event or come with their clip


def clip_question(question: str) -> str:
    """Make a question speak of the clip, not of the mixed video ('What happens first in the video?' ->
    'What happens first in this clip?')."""
    return question.replace(" in the video", " in this clip").replace(" during the video", " during this clip")


def cut_clip(duration: float, clip_s: float | None, rng: np.random.Generator, random_start: bool = True,
             step: float | None = None) -> tuple[float, float]:
    """(start, length) of a clip of at most `clip_s` seconds of a `duration`-second source; the start is uniform
    (on the `step` grid when given), or 0 when `random_start` is false."""
    if clip_s is None or duration <= clip_s + 1e-9:
        return 0.0, float(duration)
    start = float(rng.uniform(0.0, duration - clip_s)) if random_start else 0.0
    if step:
        start = math.floor(start / step + 1e-9) * step
    return round(start, 6), float(clip_s)


def window(video: AnnotatedVideo, start: float, length: float) -> AnnotatedVideo:
    """The video seen through [start, start + length): events wholly inside it, on the clip's own clock."""
    end = start + length
    events = [Event(e.start - start, e.end - start, e.caption, e.kind) for e in video.events
              if e.start >= start - 1e-9 and e.end <= end + 1e-9]
    return replace(video, duration=float(length), events=events, meta={**video.meta, "clip_start": start})


def task_text(question: str, order: str, cue: str) -> str:
    """The MixVidQA task text: by content (no position) or by position ('the clip shown first')."""
    if cue == "content":
        return MIXVID_CONTENT_PROMPT.format(question=clip_question(question))
    return mixvid_problem(clip_question(question), order)


def resolve_cue(cue: str, family: str) -> str:
    """'auto' names the clip by content when the question itself does (event questions, clip-list QA)."""
    if cue not in CUES:
        raise ValueError(f"MixVidQA cue {cue!r} unknown; use one of {list(CUES)}")
    if cue == "auto":
        return "content" if family in CONTENT_FAMILIES else "position"
    return cue


def interleave_chunks(durations: tuple[float, float], rng: np.random.Generator, s: MixVidSettings,
                      step: float | None = None, starts: tuple[float, float] = (0.0, 0.0)) -> list[list]:
    """[[source_idx, start, end], ...] alternating strictly between the sources, each chunk in
    [min_chunk_s, max_chunk_s] (multiples of `step` when given, e.g. one frame); stops when the next source
    cannot supply a full chunk. Each source's chunks are consecutive on its own timeline, from `starts[i]` over
    `durations[i]` seconds (the clip cut from that source)."""
    lo, hi = s.min_chunk_s, s.max_chunk_s
    if step:
        lo, hi = math.ceil(lo / step - 1e-9) * step, math.floor(hi / step + 1e-9) * step
        if lo > hi:
            raise ValueError(f"no multiple of step {step} s lies in [{s.min_chunk_s}, {s.max_chunk_s}]")
    pos, src, chunks = [0.0, 0.0], int(rng.integers(2)), []
    while True:
        length = float(rng.uniform(lo, hi))
        if step:
            length = min(max(round(length / step) * step, lo), hi)
        left = durations[src] - pos[src]
        if left + 1e-9 < length:
            if left + 1e-9 < lo:
                break
            length = math.floor(left / step + 1e-9) * step if step else left
            if length + 1e-9 < lo:
                break
        chunks.append([src, round(starts[src] + pos[src], 6), round(starts[src] + pos[src] + length, 6)])
        pos[src] += length
        src = 1 - src
    return chunks


def shown_until(chunks: list[list], source: int, start: float = 0.0) -> float:
    """How far into its clip (which begins at `start` in the source) the interleaved video shows `source`."""
    return max((c[2] - start for c in chunks if c[0] == source), default=0.0)


def make_mixvid_row(a: AnnotatedVideo, b: AnnotatedVideo, qa_a: Callable[[float], list[QA]],
                    qa_b: Callable[[float], list[QA]], rng: np.random.Generator, s: MixVidSettings, row_id: str,
                    families: tuple[str, ...] | list[str], split: str = "train", source: str = "",
                    step: float | None = None, starts: tuple[float, float] = (0.0, 0.0)) -> Row | None:
    """A MixVidQA row about one of the two clips, or None when no question tells the clips apart.
    `a`, `b` are the clips (see `window`; `starts` says where each begins in its file) and `qa_a(until)` /
    `qa_b(until)` list the questions each clip answers from its first `until` seconds."""
    chunks = interleave_chunks((a.duration, b.duration), rng, s, step, starts)
    if len(chunks) < s.min_chunks:
        return None
    qa_fns = (qa_a, qa_b)
    asked = int(rng.integers(2))
    other = 1 - asked
    mine = qa_fns[asked](shown_until(chunks, asked, starts[asked]))
    theirs = {q.question: q.open_answer for q in qa_fns[other](shown_until(chunks, other, starts[other]))}
    distinct = [q for q in mine if theirs.get(q.question) != q.open_answer]
    if s.cue == "content":
        distinct = [q for q in distinct if q.family in CONTENT_FAMILIES]
    qa = pick(distinct, families, rng)
    if qa is None:
        return None
    order = MIXVID_ORDERS[0] if chunks[0][0] == asked else MIXVID_ORDERS[1]
    cue = resolve_cue(s.cue, qa.family)
    return Row(
        id=row_id, video=[a.path, b.path], problem=task_text(qa.question, order, cue), solution=qa.open_answer,
        problem_type="mixvid", edits={"interleave": chunks}, source=source, split=split,
        meta={"video_ids": [a.id, b.id], "durations": [a.duration, b.duration], "clip_starts": list(starts),
              "asked_source": asked, "asked_order": order, "cue": cue, "family": qa.family, "question": qa.question,
              "other_answer": theirs.get(qa.question), "num_chunks": len(chunks),
              "duration": sum(c[2] - c[1] for c in chunks)},
    )


# ---- clips that come with their own QA (Kinetics-style lists) ----


@dataclass
class ClipQA:
    """One clip with a question about it and the answer (the paper asks a VLM for one QA per Kinetics clip)."""

    id: str
    video: str
    question: str
    answer: str
    duration: float | None = None
    start: float = 0.0  # the clip's span inside the file, when the file is longer (Kinetics gives time_start/end)
    end: float | None = None
    split: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def length(self) -> float | None:
        if self.end is not None:
            return self.end - self.start
        return None if self.duration is None else self.duration - self.start


CLIP_FIELDS = ("video", "question", "answer")
CLIP_OPTIONAL = ("id", "duration", "start", "end", "split")


def read_clip_qa(path: str | os.PathLike, video_root: str | os.PathLike | None = None,
                 strict: bool = False) -> tuple[list[ClipQA], list[str]]:
    """Read a clip list (JSONL objects or a CSV with a header) with fields video, question, answer and optional id,
    duration, start, end, split; other fields go to `meta`. Relative video paths are resolved against `video_root`
    (else the list's folder). Returns (clips, problems): bad lines are reported with their line, or raise when
    `strict`. A missing video file is a problem too."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clip list not found")
    base = Path(video_root) if video_root else path.parent
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            records = [(i + 2, r) for i, r in enumerate(csv.DictReader(f))]
    else:
        records = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                records.append((i, f"not valid JSON ({e.msg})"))
    clips, problems = [], []
    for lineno, r in records:
        where = f"{path}:{lineno}"
        try:
            if isinstance(r, str):
                raise ValueError(r)
            if not isinstance(r, dict):
                raise ValueError("expected an object")
            missing = [k for k in CLIP_FIELDS if not str(r.get(k) or "").strip()]
            if missing:
                raise ValueError(f"missing field(s) {missing}; each clip needs {list(CLIP_FIELDS)}")
            video = str(r["video"])
            video = video if os.path.isabs(video) else str((base / video).resolve())
            if not os.path.isfile(video):
                raise ValueError(f"video {video} not found")
            num = lambda k: None if r.get(k) in (None, "") else float(r[k])  # noqa: E731
            c = ClipQA(id=str(r.get("id") or f"{path.stem}-{lineno}"), video=video, question=str(r["question"]).strip(),
                       answer=str(r["answer"]).strip(), duration=num("duration"), start=num("start") or 0.0,
                       end=num("end"), split=str(r.get("split") or ""),
                       meta={k: v for k, v in r.items() if k not in CLIP_FIELDS + CLIP_OPTIONAL})
            if c.end is not None and c.end <= c.start:
                raise ValueError(f"end {c.end} must be after start {c.start}")
            clips.append(c)
        except ValueError as e:
            if strict:
                raise ValueError(f"{where}: {e}") from None
            problems.append(f"{where}: {e}")
    return clips, problems


def make_clip_mixvid_row(a: ClipQA, b: ClipQA, rng: np.random.Generator, s: MixVidSettings, row_id: str,
                         split: str = "train", source: str = "", step: float | None = None) -> Row | None:
    """A MixVidQA row asking clip `a`'s own question over `a` interleaved with `b` (both cut to `clip_s`); None
    when `b` carries the same question with the same answer (the row could not tell the clips apart) or the clips
    are too short for `min_chunks` chunks. Clip lengths must be known (`duration` or `end`)."""
    if a.length is None or b.length is None:
        raise ValueError(f"clips {a.id!r}, {b.id!r}: duration unknown; give `duration` or `end` in the clip list")
    if a.question == b.question and a.answer.lower() == b.answer.lower():
        return None
    (sa, la), (sb, lb) = (cut_clip(c.length, s.clip_s, rng, True, step) for c in (a, b))
    starts = (a.start + sa, b.start + sb)
    chunks = interleave_chunks((la, lb), rng, s, step, starts)
    if len(chunks) < s.min_chunks:
        return None
    order = MIXVID_ORDERS[0] if chunks[0][0] == 0 else MIXVID_ORDERS[1]
    cue = resolve_cue(s.cue, "clip_qa")
    return Row(
        id=row_id, video=[a.video, b.video], problem=task_text(a.question, order, cue), solution=a.answer,
        problem_type="mixvid", edits={"interleave": chunks}, source=source, split=split,
        meta={"video_ids": [a.id, b.id], "durations": [la, lb], "clip_starts": list(starts), "asked_source": 0,
              "asked_order": order, "cue": cue, "family": "clip_qa", "question": a.question,
              "other_question": b.question, "num_chunks": len(chunks),
              "duration": sum(c[2] - c[1] for c in chunks), **({"clip_meta": a.meta} if a.meta else {})},
    )
