"""Readers for dense-caption annotation files, all yielding one `AnnotatedVideo(path, duration, events)`.
DarkEventInfer in the paper is built on COIN step annotations (§1); ActivityNet Captions and YouCook2 share the same
"segments with sentences" shape, so any of them can feed DarkEventInfer, captioning and MixVidQA here.
Real files are noisy (zero-length ActivityNet segments, COIN videos gone from YouTube): `load_annotations` skips and
counts such records in a `ReadReport`; videos are found through one `VideoIndex` walk of the video folder."""
from __future__ import annotations

import json
import os
from collections import Counter
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


# Official split names per format -> vvkit split (COIN/YouCook2 `subset`; ActivityNet Captions file names).
OFFICIAL_SPLITS = {
    "coin": {"training": "train", "testing": "test"},
    "youcook2": {"training": "train", "validation": "test", "testing": "test"},
    "activitynet": {"train": "train", "val_1": "test", "val_2": "test", "val": "test", "test": "test"},
}
ACTIVITYNET_FILES = ("train.json", "val_1.json", "val_2.json")


@dataclass
class ReadReport:
    """What a reader kept, fixed and skipped, so nothing is dropped silently."""

    file: str
    videos: int = 0
    events: int = 0
    missing_videos: list[str] = field(default_factory=list)
    skipped_records: list[str] = field(default_factory=list)  # "where: reason"
    dropped_segments: Counter = field(default_factory=Counter)  # reason -> count
    clipped_segments: int = 0
    duplicate_videos: list[str] = field(default_factory=list)  # ids with several files under the root
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary, one fact a line."""
        out = [f"{self.file}: {self.videos} videos, {self.events} events kept"]
        if self.missing_videos:
            out.append(f"  {len(self.missing_videos)} videos missing under the video root (skipped), e.g. "
                       f"{self.missing_videos[:5]}")
        for reason, n in sorted(self.dropped_segments.items()):
            out.append(f"  {n} segments dropped: {reason}")
        if self.clipped_segments:
            out.append(f"  {self.clipped_segments} segments clipped to the video duration")
        if self.skipped_records:
            out.append(f"  {len(self.skipped_records)} records skipped, e.g. {self.skipped_records[:3]}")
        if self.duplicate_videos:
            out.append(f"  {len(self.duplicate_videos)} ids match several files (first in sorted order used), e.g. "
                       f"{self.duplicate_videos[:3]}")
        out += [f"  {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict:
        return {"file": self.file, "videos": self.videos, "events": self.events,
                "missing_videos": len(self.missing_videos), "skipped_records": len(self.skipped_records),
                "dropped_segments": dict(self.dropped_segments), "clipped_segments": self.clipped_segments,
                "duplicate_videos": len(self.duplicate_videos)}


class VideoIndex:
    """Every video file under a root, indexed by file stem in one walk (COIN's downloader nests
    `videos/<recipe_type>/<id>.mp4`; walking the tree once per annotation row is quadratic)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise AnnotationError(f"video root {self.root} is not a folder; set `video_root` to the folder holding "
                                  f"the videos")
        found: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames.sort()
            for name in filenames:
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS:
                    found.setdefault(stem, []).append(os.path.join(dirpath, name))
        self.paths = {k: sorted(v) for k, v in found.items()}

    def __len__(self) -> int:
        return len(self.paths)

    def candidates(self, video_id: str) -> list[str]:
        """Files for `video_id`; ActivityNet ids match with or without the 'v_' prefix."""
        alt = video_id[2:] if video_id.startswith("v_") else f"v_{video_id}"
        return self.paths.get(video_id, []) + self.paths.get(alt, [])

    def find(self, video_id: str) -> str | None:
        c = self.candidates(video_id)
        return c[0] if c else None


def find_video(video_root: str | os.PathLike | VideoIndex, video_id: str) -> str:
    """Locate `<video_root>/**/<video_id>.<ext>` (see `VideoIndex`); raises AnnotationError naming the fix."""
    index = video_root if isinstance(video_root, VideoIndex) else VideoIndex(video_root)
    p = index.find(video_id)
    if p is None:
        alt = video_id[2:] if video_id.startswith("v_") else f"v_{video_id}"
        raise AnnotationError(f"video {video_id!r} not found under {index.root} (looked for {sorted({video_id, alt})} "
                              f"with extensions {list(VIDEO_EXTENSIONS)}); download it or drop it from the annotation "
                              f"file")
    return p


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
    if not isinstance(d, dict) or key not in d:
        raise AnnotationError(f"{where}: missing key '{key}'")
    return d[key]


@dataclass
class _Ctx:
    """One read: the video index, the report, and whether bad records are errors."""

    index: VideoIndex
    report: ReadReport
    strict: bool

    def skip(self, where: str, reason: str) -> None:
        if self.strict:
            raise AnnotationError(f"{where}: {reason}")
        self.report.skipped_records.append(f"{where}: {reason}")


def _event(seg, text, where: str, duration: float, ctx: _Ctx) -> Event | None:
    """One event, clipped to [0, duration]; zero-length spans and spans starting after the video are dropped and
    counted (ActivityNet Captions has e.g. [17.37, 17.37]); a reversed span or an empty caption is a malformed
    record: an error when strict, else dropped and counted."""
    if not (isinstance(seg, (list, tuple)) and len(seg) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in seg)):
        if ctx.strict:
            raise AnnotationError(f"{where}: segment must be [start, end] seconds, got {seg!r}")
        ctx.report.dropped_segments["malformed segment"] += 1
        return None
    s, e = float(seg[0]), float(seg[1])
    if s > e or e < 0:
        if ctx.strict:
            raise AnnotationError(f"{where}: segment {list(seg)!r} must satisfy 0 <= start < end")
        ctx.report.dropped_segments["start after end"] += 1
        return None
    if not isinstance(text, str) or not text.strip():
        if ctx.strict:
            raise AnnotationError(f"{where}: caption must be a non-empty string, got {text!r}")
        ctx.report.dropped_segments["empty caption"] += 1
        return None
    if s >= duration:
        ctx.report.dropped_segments["starts at or after the video's end"] += 1
        return None
    if s < 0 or e > duration:
        ctx.report.clipped_segments += 1
        s, e = max(s, 0.0), min(e, duration)
    if e - s <= 1e-6:
        ctx.report.dropped_segments["zero length"] += 1
        return None
    return Event(s, e, text.strip())


def _video(vid: str, rec: dict, anns: list, seg_key: str, text_key: str, where: str, ctx: _Ctx, meta: dict,
           seg_list: list | None = None) -> AnnotatedVideo | None:
    """Shared tail of the readers: duration, events, the video file; None (counted) when the record is skipped."""
    duration = rec.get("duration") if isinstance(rec, dict) else None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
        ctx.skip(where, f"'duration' must be a positive number, got {duration!r}")
        return None
    events = []
    for i, a in enumerate(anns):
        w = f"{where}.{seg_key}[{i}]"
        if seg_list is not None:
            ev = _event(seg_list[i], a, w, float(duration), ctx)
        else:
            ev = _event(_key(a, "segment", w), _key(a, text_key, w), w, float(duration), ctx)
        if ev is not None:
            events.append(ev)
    path = ctx.index.find(vid)
    if path is None:
        if ctx.strict:
            find_video(ctx.index, vid)  # raises with the standard message
        ctx.report.missing_videos.append(vid)
        return None
    if len(ctx.index.candidates(vid)) > 1:
        ctx.report.duplicate_videos.append(vid)
    events.sort(key=lambda e: (e.start, e.end))
    ctx.report.videos += 1
    ctx.report.events += len(events)
    return AnnotatedVideo(id=vid, path=path, duration=float(duration), events=events, meta=meta)


def _official(fmt: str, name: str) -> str:
    return OFFICIAL_SPLITS[fmt].get(name, "")


def read_coin(path: str | os.PathLike, video_root, strict: bool = True,
              report: ReadReport | None = None) -> Iterator[AnnotatedVideo]:
    """COIN: {"database": {id: {"duration", "subset", "recipe_type", "annotation": [{"segment": [s, e], "label"}]}}}."""
    path = Path(path)
    ctx = _Ctx(_as_index(video_root), report or ReadReport(str(path)), strict)
    db = _key(_load_json(path), "database", str(path))
    for vid, rec in db.items():
        where = f"{path}: database.{vid}"
        if not isinstance(rec, dict) or "annotation" not in rec:
            ctx.skip(where, "missing key 'annotation'")
            continue
        subset = rec.get("subset", "")
        v = _video(vid, rec, rec["annotation"], "annotation", "label", where, ctx,
                   {"subset": subset, "official_split": _official("coin", subset), "format": "coin",
                    **({"recipe_type": rec["recipe_type"]} if "recipe_type" in rec else {})})
        if v is not None:
            yield v


def _as_index(video_root) -> VideoIndex:
    return video_root if isinstance(video_root, VideoIndex) else VideoIndex(video_root)


def _activitynet_files(path: Path, report: ReadReport) -> list[Path]:
    """A folder of the official files (train.json, val_1.json, val_2.json) or one file. val_2 re-annotates the
    val_1 videos with other events, so it is read only when val_1 is absent (else a test video would appear twice)."""
    if not path.is_dir():
        return [path]
    files = [path / n for n in ACTIVITYNET_FILES if (path / n).is_file()]
    if (path / "val_1.json").is_file() and (path / "val_2.json").is_file():
        files.remove(path / "val_2.json")
        report.notes.append("val_2.json not read: it annotates the val_1 videos again")
    if not files:
        raise AnnotationError(f"{path}: no ActivityNet Captions file found; expected some of {list(ACTIVITYNET_FILES)}")
    return files


def read_activitynet(path: str | os.PathLike, video_root, strict: bool = True,
                     report: ReadReport | None = None) -> Iterator[AnnotatedVideo]:
    """ActivityNet Captions: {id: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}; `path` may be the
    folder of the official train.json / val_1.json / val_2.json, whose file names give the split."""
    path = Path(path)
    ctx = _Ctx(_as_index(video_root), report or ReadReport(str(path)), strict)
    seen: set[str] = set()
    for f in _activitynet_files(path, ctx.report):
        split = _official("activitynet", f.stem)
        for vid, rec in _load_json(f).items():
            where = f"{f}: {vid}"
            if vid in seen:
                ctx.skip(where, "video already read from another split file")
                continue
            try:
                stamps, sents = _key(rec, "timestamps", where), _key(rec, "sentences", where)
            except AnnotationError as e:
                if strict:
                    raise
                ctx.report.skipped_records.append(str(e))
                continue
            if len(stamps) != len(sents):
                ctx.skip(where, f"{len(stamps)} timestamps but {len(sents)} sentences; they must pair up")
                continue
            v = _video(vid, rec, sents, "timestamps", "sentences", where, ctx,
                       {"format": "activitynet", "official_split": split, "file": f.name}, seg_list=stamps)
            if v is not None:
                seen.add(vid)
                yield v


def read_youcook2(path: str | os.PathLike, video_root, strict: bool = True,
                  report: ReadReport | None = None) -> Iterator[AnnotatedVideo]:
    """YouCook2: {"database": {id: {"duration", "subset", "annotations": [{"segment": [s, e], "sentence"}]}}}."""
    path = Path(path)
    ctx = _Ctx(_as_index(video_root), report or ReadReport(str(path)), strict)
    db = _key(_load_json(path), "database", str(path))
    for vid, rec in db.items():
        where = f"{path}: database.{vid}"
        if not isinstance(rec, dict) or "annotations" not in rec:
            ctx.skip(where, "missing key 'annotations'")
            continue
        subset = rec.get("subset", "")
        v = _video(vid, rec, rec["annotations"], "annotations", "sentence", where, ctx,
                   {"subset": subset, "official_split": _official("youcook2", subset), "format": "youcook2"})
        if v is not None:
            yield v


READERS = {"coin": read_coin, "activitynet": read_activitynet, "youcook2": read_youcook2}


def load_annotations(path: str | os.PathLike, fmt: str, video_root: str | os.PathLike | VideoIndex,
                     strict: bool = False) -> tuple[list[AnnotatedVideo], ReadReport]:
    """All videos of an annotation file (or ActivityNet folder) plus the report of what was skipped or fixed.
    With strict=False (the builder's default) missing videos and malformed records are skipped and counted;
    strict=True raises on the first one."""
    if fmt not in READERS:
        raise AnnotationError(f"unknown annotation format {fmt!r}; use one of {list(FORMATS)}")
    report = ReadReport(str(path))
    videos = list(READERS[fmt](path, video_root, strict=strict, report=report))
    return videos, report


def read_annotations(path: str | os.PathLike, fmt: str, video_root: str | os.PathLike | VideoIndex,
                     strict: bool = True) -> list[AnnotatedVideo]:
    """Dispatch on `fmt` (one of FORMATS) and return all videos in the file's order (strict by default: the first
    missing video or malformed record raises; use `load_annotations` for the skip-and-report reading)."""
    return load_annotations(path, fmt, video_root, strict)[0]


# ---- step phrases as sentences ----

_CONNECTIVES = ("Then", "Next", "After that")


def sentence(text: str) -> str:
    """'take out the laptop CD drive' -> 'Take out the laptop CD drive.' (COIN labels and YouCook2 steps are
    lower-case phrases without a full stop; full sentences pass through unchanged)."""
    t = " ".join(text.split())
    if not t:
        return t
    t = t[0].upper() + t[1:]
    return t if t[-1] in ".!?" else t + "."


def _lower_first(s: str) -> str:
    """Lower-case the first letter unless the first word looks like a name or an acronym ('CD', 'I')."""
    word = s.split(" ", 1)[0]
    if word == "I" or (len(word) > 1 and not word[1:].islower()):
        return s
    return s[0].lower() + s[1:]


def steps_paragraph(captions: list[str]) -> str:
    """Ordered step phrases as one paragraph of sentences: 'First, take out the laptop CD drive. Then, remove the
    screws. Finally, insert the new drive.' (the caption target; one sentence per event, never a run-on)."""
    sents = [sentence(c) for c in captions if c and c.strip()]
    if not sents:
        raise ValueError("steps_paragraph needs at least one non-empty caption")
    if len(sents) == 1:
        return sents[0]
    out = []
    for k, s in enumerate(sents):
        conn = "First" if k == 0 else "Finally" if k == len(sents) - 1 else _CONNECTIVES[(k - 1) % len(_CONNECTIVES)]
        out.append(f"{conn}, {_lower_first(s)}")
    return " ".join(out)
