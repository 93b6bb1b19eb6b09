"""MixVidQA (paper §2): two clips cut into chunks of 1.5-2.0 s and interleaved A B A B ..., with a question about
one clip only. The paper interleaves ~10 s Kinetics clips and asks a VLM-written question about one of them; here
each clip keeps its own timeline (chunk k of A continues where chunk k-1 of A stopped), the clip that starts is
random, alternation is strict, and the question is picked so that its answer differs between the two clips (or does
not exist in the other one), so answering about the wrong clip is wrong. The edit is stored lazily as
{"interleave": [[source_idx, start, end], ...]} with `video = [path_a, path_b]`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vvkit.prompts import MIXVID_ORDERS, mixvid_problem
from vvkit.schema import Row
from vvkit.synth.adapters import AnnotatedVideo
from vvkit.synth.questions import QA, pick


@dataclass
class MixVidSettings:
    """Chunking of the two sources."""

    min_chunk_s: float = 1.5
    max_chunk_s: float = 2.0
    min_chunks: int = 4  # at least two chunks of each clip, so the alternation is visible


def interleave_chunks(durations: tuple[float, float], rng: np.random.Generator, s: MixVidSettings,
                      step: float | None = None) -> list[list]:
    """[[source_idx, start, end], ...] alternating strictly between the sources, each chunk in
    [min_chunk_s, max_chunk_s] (multiples of `step` when given, e.g. one frame); stops when the next source
    cannot supply a full chunk. Each source's chunks are consecutive on its own timeline."""
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
        chunks.append([src, round(pos[src], 6), round(pos[src] + length, 6)])
        pos[src] += length
        src = 1 - src
    return chunks


def shown_until(chunks: list[list], source: int) -> float:
    """How far into `source` the interleaved video goes (its chunks are consecutive from 0)."""
    return max((c[2] for c in chunks if c[0] == source), default=0.0)


def edited_timeline(chunks: list[list]) -> list[tuple[float, float, int, float]]:
    """(edited_start, edited_end, source_idx, source_start) per chunk: where each chunk lands in the mixed video."""
    out, t = [], 0.0
    for src, s, e in chunks:
        out.append((t, t + (e - s), int(src), s))
        t += e - s
    return out


def make_mixvid_row(a: AnnotatedVideo, b: AnnotatedVideo, qa_a: Callable[[float], list[QA]],
                    qa_b: Callable[[float], list[QA]], rng: np.random.Generator, s: MixVidSettings, row_id: str,
                    families: tuple[str, ...] | list[str], split: str = "train", source: str = "",
                    step: float | None = None) -> Row | None:
    """A MixVidQA row about one of the two clips, or None when no question tells the clips apart.
    `qa_a(until)` / `qa_b(until)` list the questions each clip answers from its first `until` seconds."""
    chunks = interleave_chunks((a.duration, b.duration), rng, s, step)
    if len(chunks) < s.min_chunks:
        return None
    clips, qa_fns = (a, b), (qa_a, qa_b)
    asked = int(rng.integers(2))
    other = 1 - asked
    mine = qa_fns[asked](shown_until(chunks, asked))
    theirs = {q.question: q.open_answer for q in qa_fns[other](shown_until(chunks, other))}
    distinct = [q for q in mine if theirs.get(q.question) != q.open_answer]
    qa = pick(distinct, families, rng)
    if qa is None:
        return None
    order = MIXVID_ORDERS[0] if chunks[0][0] == asked else MIXVID_ORDERS[1]
    return Row(
        id=row_id, video=[a.path, b.path], problem=mixvid_problem(qa.question, order), solution=qa.open_answer,
        problem_type="mixvid", edits={"interleave": chunks}, source=source, split=split,
        meta={"video_ids": [a.id, b.id], "durations": [a.duration, b.duration], "asked_source": asked,
              "asked_order": order, "family": qa.family, "question": qa.question,
              "other_answer": theirs.get(qa.question), "num_chunks": len(chunks),
              "duration": sum(c[2] - c[1] for c in chunks)},
    )
