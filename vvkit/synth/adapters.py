"""Readers for dense-caption annotation files, all yielding one `AnnotatedVideo(path, duration, events)`.
DarkEventInfer in the paper is built on COIN step annotations (§1); ActivityNet Captions and YouCook2 share the same
"segments with sentences" shape, so any of them can feed DarkEventInfer, captioning and MixVidQA here."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
FORMATS = ("coin", "activitynet", "youcook2")


@dataclass
class Event:
    """One timestamped event: [start, end) seconds and a one-sentence caption; `kind` is a verb tag when known."""

    start: float
    end: float
    caption: str
    kind: str = ""


@dataclass
class AnnotatedVideo:
    """A source video with its ordered events; the common input of every synthesis task."""

    id: str
    path: str
    duration: float
    events: list[Event]
    meta: dict = field(default_factory=dict)


class AnnotationError(ValueError):
    """An annotation file is malformed or a video is missing; the message names the file, the key and the fix."""


def find_video(video_root: str | os.PathLike, video_id: str) -> str:
    """Locate `<video_root>/**/<video_id>.<ext>`; ActivityNet ids with or without the 'v_' prefix both match."""
    root = Path(video_root)
    if not root.is_dir():
        raise AnnotationError(f"video root {root} is not a folder; set `video_root` to the folder holding the videos")
    names = {video_id, video_id[2:] if video_id.startswith("v_") else f"v_{video_id}"}
    for name in names:
        for ext in VIDEO_EXTENSIONS:
            p = root / f"{name}{ext}"
            if p.is_file():
                return str(p)
    for p in root.rglob("*"):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.stem in names and p.is_file():
            return str(p)
    raise AnnotationError(f"video {video_id!r} not found under {root} (looked for {sorted(names)} with extensions "
                          f"{list(VIDEO_EXTENSIONS)}); download it or drop it from the annotation file")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object at the top level")
    return data


def _key(d: dict, key: str, where: str):
    if key not in d:
        raise AnnotationError(f"{where}: missing key '{key}'")
    return d[key]


def _event(seg, text, where: str) -> Event:
    if not (isinstance(seg, (list, tuple)) and len(seg) == 2 and all(isinstance(x, (int, float)) for x in seg)):
        raise AnnotationError(f"{where}: segment must be [start, end] seconds, got {seg!r}")
    if not (0 <= seg[0] < seg[1]):
        raise AnnotationError(f"{where}: segment {seg!r} must satisfy 0 <= start < end")
    if not isinstance(text, str) or not text.strip():
        raise AnnotationError(f"{where}: caption must be a non-empty string, got {text!r}")
    return Event(float(seg[0]), float(seg[1]), text.strip())


def _finish(vid: str, path: str, duration, events: list[Event], where: str, meta: dict) -> AnnotatedVideo:
    if not isinstance(duration, (int, float)) or duration <= 0:
        raise AnnotationError(f"{where}: 'duration' must be a positive number, got {duration!r}")
    events = sorted(events, key=lambda e: (e.start, e.end))
    for e in events:
        if e.end > duration + 0.5:
            raise AnnotationError(f"{where}: event [{e.start}, {e.end}] ends after the video ({duration} s)")
        e.end = min(e.end, float(duration))
    return AnnotatedVideo(id=vid, path=path, duration=float(duration), events=events, meta=meta)


def read_coin(path: str | os.PathLike, video_root: str | os.PathLike) -> Iterator[AnnotatedVideo]:
    """COIN: {"database": {id: {"duration", "subset", "annotation": [{"segment": [s, e], "label"}]}}}."""
    path = Path(path)
    db = _key(_load_json(path), "database", str(path))
    for vid, rec in db.items():
        where = f"{path}: database.{vid}"
        anns = _key(rec, "annotation", where)
        events = [_event(_key(a, "segment", f"{where}.annotation[{i}]"), _key(a, "label", f"{where}.annotation[{i}]"),
                         f"{where}.annotation[{i}]") for i, a in enumerate(anns)]
        yield _finish(vid, find_video(video_root, vid), _key(rec, "duration", where), events, where,
                      {"subset": rec.get("subset", ""), "format": "coin"})


def read_activitynet(path: str | os.PathLike, video_root: str | os.PathLike) -> Iterator[AnnotatedVideo]:
    """ActivityNet Captions: {id: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}."""
    path = Path(path)
    for vid, rec in _load_json(path).items():
        where = f"{path}: {vid}"
        stamps, sents = _key(rec, "timestamps", where), _key(rec, "sentences", where)
        if len(stamps) != len(sents):
            raise AnnotationError(f"{where}: {len(stamps)} timestamps but {len(sents)} sentences; they must pair up")
        events = [_event(s, t, f"{where}.timestamps[{i}]") for i, (s, t) in enumerate(zip(stamps, sents))]
        yield _finish(vid, find_video(video_root, vid), _key(rec, "duration", where), events, where,
                      {"format": "activitynet"})


def read_youcook2(path: str | os.PathLike, video_root: str | os.PathLike) -> Iterator[AnnotatedVideo]:
    """YouCook2: {"database": {id: {"duration", "subset", "annotations": [{"segment": [s, e], "sentence"}]}}}."""
    path = Path(path)
    db = _key(_load_json(path), "database", str(path))
    for vid, rec in db.items():
        where = f"{path}: database.{vid}"
        anns = _key(rec, "annotations", where)
        events = [_event(_key(a, "segment", f"{where}.annotations[{i}]"),
                         _key(a, "sentence", f"{where}.annotations[{i}]"), f"{where}.annotations[{i}]")
                  for i, a in enumerate(anns)]
        yield _finish(vid, find_video(video_root, vid), _key(rec, "duration", where), events, where,
                      {"subset": rec.get("subset", ""), "format": "youcook2"})


READERS = {"coin": read_coin, "activitynet": read_activitynet, "youcook2": read_youcook2}


def read_annotations(path: str | os.PathLike, fmt: str, video_root: str | os.PathLike) -> list[AnnotatedVideo]:
    """Dispatch on `fmt` (one of FORMATS) and return all videos in the file's order."""
    if fmt not in READERS:
        raise AnnotationError(f"unknown annotation format {fmt!r}; use one of {list(FORMATS)}")
    return list(READERS[fmt](path, video_root))
