"""DREAM-1K (omni-research/DREAM-1K, Tarsier) read into caption rows, scored with AutoDQ (paper §6).

Annotations, any of three layouts: the hub's `json/metadata.json` [{idx, video_file, description, events?, source,
duration, n_subjects, n_shots, n_events}]; Tarsier's `data/annotations/DREAM-1k.jsonl`, one record a line, either
{messages: [user {content: [video {video: {video_file}}, text]}, assistant {content: [{reference}]}],
dataset: "DREAM/<source>", idx, vid, extra_info: {events, duration, n_events, n_shots, n_subjects}} or the older
flat {idx, dataset, text: {prompt, response}, video_file, extra_info, vid}. The annotated `events` are kept
(`meta["events"]`) for AutoDQ's recall.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vvkit.benchmarks.common import BenchmarkError, find_video, read_json_records, require_field, to_row, video_roots
from vvkit.prompts import CAPTION_PROMPT  # the paper's caption prompt (§3), also asked of DREAM-1K videos
from vvkit.schema import Row

DREAM_META = ("duration", "n_subjects", "n_shots", "n_events")
DREAM_SUBDIRS = ("", "video", "videos")


def _dream_events(value: Any, where: str, key: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise BenchmarkError(f"{where}: field '{key}' must be a list of event sentences, got {value!r}")
    return [e.strip() for e in value if e.strip()] or None


def _dream_record(rec: Any, where: str) -> dict:
    """{idx, description, events, source, video names, extra} of one record in any of the three layouts."""
    if not isinstance(rec, dict):
        raise BenchmarkError(f"{where}: expected an object with fields, got {type(rec).__name__}")
    idx = rec.get("idx", rec.get("vid"))
    if idx is None:
        raise BenchmarkError(f"{where}: field 'idx' is missing")
    extra = rec.get("extra_info") if isinstance(rec.get("extra_info"), dict) else {}
    names: list[str] = []
    if "messages" in rec:  # Tarsier chat layout
        msgs = rec["messages"]
        if not isinstance(msgs, list) or len(msgs) < 2 or not isinstance(msgs[1], dict):
            raise BenchmarkError(f"{where}: field 'messages' must hold the user turn and the assistant turn")
        content = msgs[1].get("content")
        ref = content[0].get("reference") if isinstance(content, list) and content and isinstance(content[0], dict) \
            else None
        if not isinstance(ref, str) or not ref.strip():
            raise BenchmarkError(f"{where}: field 'messages[1].content[0].reference' (the reference description) is "
                                 f"missing or empty")
        description = ref
        for part in (msgs[0].get("content") or []) if isinstance(msgs[0], dict) else []:
            video = part.get("video") if isinstance(part, dict) else None
            if isinstance(video, dict) and isinstance(video.get("video_file"), str):
                names.append(video["video_file"])
        events_key = "extra_info.events"
    elif isinstance(rec.get("text"), dict):  # Tarsier's older flat layout
        description = rec["text"].get("response")
        if not isinstance(description, str) or not description.strip():
            raise BenchmarkError(f"{where}: field 'text.response' (the reference description) is missing or empty")
        if isinstance(rec.get("video_file"), str):
            names.append(rec["video_file"])
        events_key = "extra_info.events"
    elif "description" in rec or "video_file" in rec:  # the hub's metadata.json
        description = require_field(rec, "description", where)
        names.append(require_field(rec, "video_file", where))
        extra = rec
        events_key = "events"
    else:
        raise BenchmarkError(f"{where}: not a DREAM-1K record: expected 'description' (json/metadata.json), "
                             f"'messages' or 'text.response' (Tarsier's DREAM-1k.jsonl); fields are {sorted(rec)}")
    events = _dream_events(extra.get("events"), where, events_key)
    source = rec.get("source") or str(rec.get("dataset") or "").split("/", 1)[-1] or None
    usable = [n for n in names if n and "placeholder" not in n]
    video_names = usable + [Path(n).name for n in usable] + [str(rec.get("vid", idx))]
    return {"idx": idx, "description": description, "events": events, "source": source,
            "names": list(dict.fromkeys(video_names)), "extra": {k: extra[k] for k in DREAM_META if k in extra}}


def load_dream1k(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """DREAM-1K rows (caption): the reference description is the solution, scored with AutoDQ (paper §6); the
    annotated events go to `meta["events"]` (AutoDQ's recall is defined on them) and the clip's origin to
    `meta["source"]` (the per-source breakdown)."""
    path = Path(path)
    if path.is_dir():
        cands = [path / "json" / "metadata.json", path / "metadata.json", path / "data" / "annotations" /
                 "DREAM-1k.jsonl", path / "DREAM-1k.jsonl"]
        path = next((c for c in cands if c.is_file()), cands[0])
    roots = video_roots(path, video_root, up=2)
    rows = []
    for where, rec in read_json_records(path, "dream1k"):
        d = _dream_record(rec, where)
        meta: dict[str, Any] = {**d["extra"]}
        if d["source"]:
            meta["source"] = d["source"]
        if d["events"]:
            meta["events"] = d["events"]
        rows.append(to_row({
            "id": f"dream1k/{d['idx']}", "video": find_video(roots, d["names"], DREAM_SUBDIRS),
            "problem": CAPTION_PROMPT, "solution": d["description"], "problem_type": "caption",
            "source": "dream1k", "split": "test", "meta": meta,
        }, f"{where} (idx {d['idx']})"))
    return rows
