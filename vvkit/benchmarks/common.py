"""What the benchmark readers share: their two errors, the layouts the "missing" errors quote, strict field access,
the JSON/JSONL reader that names `file:line`, and the video finder that tries every published folder layout."""
from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any, Sequence

from vvkit.schema import Row, RowError, validate_row

VIDEO_EXTENSIONS = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")


class BenchmarkError(ValueError):
    """A benchmark file that does not match its published format; the message names file, row and field."""


class BenchmarkMissing(FileNotFoundError):
    """A benchmark file or video that is not on disk; the message says what to put where."""


# What each benchmark expects on disk, quoted by the "missing" errors.
LAYOUT = {
    "videomme": "the Video-MME annotations (videomme/test-00000-of-00001.parquet from the lmms-lab/Video-MME dataset, "
                "or a JSON list / JSONL with its columns) and the videos as <video_root>/<videoID>.mp4, "
                "<root>/data/<videoID>.mp4 (lmms-eval) or <root>/video/<videoID>.mp4 (VLMEvalKit)",
    "mvbench": "MVBench's json/<task>.json files (OpenGVLab/MVBench; a single file, the json/ folder or the dataset "
               "root) and the videos in each task's folder under <root>/video/ (e.g. video/clevrer/video_validation), "
               "under <root>/ as lmms-eval keeps them, or {task: folder} as video_root",
    "dream1k": "DREAM-1K's json/metadata.json (omni-research/DREAM-1K) or Tarsier's data/annotations/DREAM-1k.jsonl, "
               "and the unzipped videos as <video_root>/<video_file name> or <video_root>/<vid>.mp4 (also under "
               "video/ or videos/)",
    "nextqa": "NExT-QA's multiple-choice CSV (dataset/nextqa/val.csv or test.csv from doc-doc/NExT-QA) and the "
              "videos as <video_root>/<vidorID>.mp4 (map_vid_vidorID.json beside the CSV) or flat as "
              "<video_root>/<video>.mp4 or <video_root>/NExTVideo/<video>.mp4",
}


def missing(fmt: str, what: str, path: Path) -> BenchmarkMissing:
    """The error for an absent annotation file or folder, quoting what `fmt` expects where."""
    return BenchmarkMissing(f"{path}: {what} not found. Put {LAYOUT[fmt]} there (vvkit never downloads), and point "
                            f"params `analysis.benchmarks.<name>.path` / `video_root` at them.")


def require_field(rec: dict, key: str, where: str, kind: type | tuple = str) -> Any:
    """rec[key], required and of type `kind`, else a BenchmarkError naming `where` and the field."""
    if not isinstance(rec, dict):
        raise BenchmarkError(f"{where}: expected an object with fields, got {type(rec).__name__}")
    if key not in rec or rec[key] is None:
        raise BenchmarkError(f"{where}: field '{key}' is missing")
    value = rec[key]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise BenchmarkError(f"{where}: field '{key}' = {value!r} is not a non-empty {getattr(kind, '__name__', kind)}")
    return value


def to_row(d: dict, where: str) -> Row:
    """Validate through the schema, re-raising its error as a BenchmarkError with the benchmark's location."""
    try:
        return validate_row(d, where)
    except RowError as e:
        raise BenchmarkError(str(e)) from None


def read_json_records(path: Path, fmt: str) -> list[tuple[str, dict]]:
    """(location, record) pairs from a JSON list or a JSONL file; locations are 'file:line' or 'file[i]'."""
    if not path.is_file():
        raise missing(fmt, "annotation file", path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append((f"{path}:{lineno}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise BenchmarkError(f"{path}:{lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchmarkError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, list):
        raise BenchmarkError(f"{path}: expected a JSON list of records at the top level, got {type(data).__name__}")
    return [(f"{path}[{i}]", rec) for i, rec in enumerate(data)]


def find_video(roots: Sequence[Path], names: Sequence[str], subdirs: Sequence[str] = ("",)) -> str:
    """First existing `root/subdir/name` (with or without a video extension); else the first candidate, which
    `check_videos` reports with the layout."""
    cands = []
    for root in roots:
        for sub in subdirs:
            for name in names:
                base = root / sub / name if sub else root / name
                cands.append(base)
                if not Path(name).suffix:
                    cands += [base.with_name(base.name + ext) for ext in VIDEO_EXTENSIONS]
    for c in cands:
        if c.exists():
            return str(c)
    return str(cands[0])


def video_roots(path: Path, video_root: str | os.PathLike | None, up: int = 1) -> list[Path]:
    """Where videos may lie: the given root, else the annotation's folder and `up` folders above it."""
    if video_root:
        return [Path(video_root)]
    roots = [path.parent]
    for _ in range(up):
        roots.append(roots[-1].parent)
    return list(dict.fromkeys(roots))


def option_letters(options: list[str], where: str) -> str:
    """The option letters of 'A. ...' strings, or a BenchmarkError naming the field."""
    letters = "".join(o.split(".", 1)[0].strip() for o in options)
    if len(letters) != len(options) or letters != string.ascii_uppercase[: len(options)]:
        raise BenchmarkError(f"{where}: field 'options' must be 'A. ...', 'B. ...' strings in order, got {options!r}")
    return letters


def check_videos(rows: list[Row], fmt: str) -> None:
    """Every row's video exists as a file; else one BenchmarkMissing listing the first few and the layout."""
    absent = [p for r in rows for p in r.paths if not Path(p).is_file()]
    if absent:
        dirs = [p for p in absent if Path(p).is_dir()]
        if dirs:
            raise BenchmarkError(f"{dirs[0]}: a folder of frames, not a video file; vvkit reads video files "
                                 f"(write the frames to an mp4 with vvkit.video.write_video)")
        shown = "\n  ".join(absent[:5])
        raise BenchmarkMissing(f"{len(absent)} of {len(rows)} videos not found, e.g.\n  {shown}\nPut {LAYOUT[fmt]}.")
