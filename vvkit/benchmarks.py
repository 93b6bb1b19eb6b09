"""Benchmark adapters: LOCAL copies of Video-MME, MVBench, DREAM-1K and NExT-QA, in their published formats, read
into vvkit rows (`problem_type` mcq or caption) so `vvkit.evaluate.evaluate` scores them like the toy-world rows.

The paper evaluates on these (paper §6: QA at 1 fps / <= 128 frames, captions at 16 uniform frames; set that per
benchmark with a `frames` entry). Formats follow each dataset card: Video-MME (lmms-lab/Video-MME parquet), MVBench
(OpenGVLab/MVBench `json/<task>.json`), DREAM-1K (omni-research/DREAM-1K `json/metadata.json`), NExT-QA
(doc-doc/NExT-QA `val.csv` / `test.csv`). Nothing is downloaded: a missing file says what to put where, and a
malformed one raises `BenchmarkError` naming the file, the row and the field.
"""
from __future__ import annotations

import csv
import json
import os
import string
from pathlib import Path
from typing import Any, Callable

from vvkit.prompts import CAPTION_PROMPT  # the paper's caption prompt (§3), also asked of DREAM-1K videos
from vvkit.schema import Row, RowError, validate_row

VIDEO_EXTENSIONS = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")


class BenchmarkError(ValueError):
    """A benchmark file that does not match its published format; the message names file, row and field."""


class BenchmarkMissing(FileNotFoundError):
    """A benchmark file or video that is not on disk; the message says what to put where."""


# What each benchmark expects on disk, quoted by the "missing" errors.
LAYOUT = {
    "videomme": "the Video-MME annotations (videomme/test-00000-of-00001.parquet from the lmms-lab/Video-MME dataset, "
                "or a JSON list / JSONL with its columns) and the videos as <video_root>/<videoID>.mp4",
    "mvbench": "MVBench's json/<task>.json files (OpenGVLab/MVBench; a single file or the json/ folder) and the "
               "videos under <video_root> (one folder, or {task: folder} as in MVBench's data_list)",
    "dream1k": "DREAM-1K's json/metadata.json (omni-research/DREAM-1K) and the unzipped videos as "
               "<video_root>/<video_file name>",
    "nextqa": "NExT-QA's multiple-choice CSV (dataset/nextqa/val.csv or test.csv from doc-doc/NExT-QA) and the "
              "videos as <video_root>/<vidorID>.mp4 (map_vid_vidorID.json beside the CSV) or <video_root>/<video>.mp4",
}


def _missing(fmt: str, what: str, path: Path) -> BenchmarkMissing:
    return BenchmarkMissing(f"{path}: {what} not found. Put {LAYOUT[fmt]} there (vvkit never downloads), and point "
                            f"params `analysis.benchmarks.<name>.path` / `video_root` at them.")


def _field(rec: dict, key: str, where: str, kind: type | tuple = str) -> Any:
    """rec[key], required and of type `kind`, else a BenchmarkError naming `where` and the field."""
    if not isinstance(rec, dict):
        raise BenchmarkError(f"{where}: expected an object with fields, got {type(rec).__name__}")
    if key not in rec or rec[key] is None:
        raise BenchmarkError(f"{where}: field '{key}' is missing")
    value = rec[key]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise BenchmarkError(f"{where}: field '{key}' = {value!r} is not a non-empty {getattr(kind, '__name__', kind)}")
    return value


def _row(d: dict, where: str) -> Row:
    """Validate through the schema, re-raising its error as a BenchmarkError with the benchmark's location."""
    try:
        return validate_row(d, where)
    except RowError as e:
        raise BenchmarkError(str(e)) from None


def _read_json_records(path: Path, fmt: str) -> list[tuple[str, dict]]:
    """(location, record) pairs from a JSON list or a JSONL file; locations are 'file:line' or 'file[i]'."""
    if not path.is_file():
        raise _missing(fmt, "annotation file", path)
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


def _find_video(root: Path, names: list[str]) -> str:
    """First existing `root/name` (with or without a video extension); else the first candidate (checked later)."""
    cands = []
    for name in names:
        cands.append(root / name)
        if not Path(name).suffix:
            cands += [root / f"{name}{ext}" for ext in VIDEO_EXTENSIONS]
    for c in cands:
        if c.exists():
            return str(c)
    return str(cands[0])


# ---- Video-MME (lmms-lab/Video-MME: video_id, duration, domain, sub_category, url, videoID, question_id,
#      task_type, question, options ["A. ...", ...], answer "A") ----

def load_videomme(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """Video-MME rows (mcq) from the published parquet or a JSON list/JSONL with the same columns."""
    path = Path(path)
    root = Path(video_root) if video_root else path.parent
    if path.suffix == ".parquet":
        if not path.is_file():
            raise _missing("videomme", "annotation file", path)
        import pandas as pd

        try:
            records = pd.read_parquet(path).to_dict("records")
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise BenchmarkError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
        located = [(f"{path} row {i}", rec) for i, rec in enumerate(records)]
    else:
        located = _read_json_records(path, "videomme")
    rows = []
    for where, rec in located:
        qid = _field(rec, "question_id", where)
        where = f"{where} (question_id {qid})"
        options = rec.get("options")
        if hasattr(options, "tolist"):  # parquet list columns arrive as numpy arrays
            options = options.tolist()
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise BenchmarkError(f"{where}: field 'options' must be a list of 'A. ...' strings, got {options!r}")
        video_id = _field(rec, "videoID", where)
        meta = {k: str(rec[k]) for k in ("video_id", "duration", "domain", "sub_category", "task_type") if k in rec}
        rows.append(_row({
            "id": f"videomme/{qid}", "video": _find_video(root, [video_id]),
            "problem": _field(rec, "question", where), "solution": _field(rec, "answer", where).strip(),
            "problem_type": "mcq", "options": options, "source": "videomme", "split": "test", "meta": meta,
        }, where))
    return rows


# ---- MVBench (OpenGVLab/MVBench json/<task>.json: [{video, question, candidates, answer, start?, end?}]) ----

def load_mvbench(path: str | os.PathLike, video_root: str | os.PathLike | dict | None = None) -> list[Row]:
    """MVBench rows (mcq): one task file or a folder of them; the answer text becomes the letter of its candidate."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise _missing("mvbench", "task files (*.json)", path)
    elif path.is_file():
        files = [path]
    else:
        raise _missing("mvbench", "task file or json/ folder", path)
    rows = []
    for f in files:
        task = f.stem
        if isinstance(video_root, dict):
            if task not in video_root:
                raise BenchmarkError(f"{f}: no video folder for task {task!r} in video_root; add {task}: <folder>")
            root = Path(video_root[task])
        else:
            root = Path(video_root) if video_root else f.parent
        for i, (where, rec) in enumerate(_read_json_records(f, "mvbench")):
            cands = _field(rec, "candidates", where, list)
            answer = _field(rec, "answer", where)
            if not all(isinstance(c, str) for c in cands) or not 2 <= len(cands) <= 26:
                raise BenchmarkError(f"{where}: field 'candidates' must be 2-26 strings, got {cands!r}")
            if answer not in cands:
                raise BenchmarkError(f"{where}: field 'answer' {answer!r} is not one of the candidates {cands}")
            meta: dict[str, Any] = {"task": task}
            if rec.get("start") is not None or rec.get("end") is not None:  # the part of the video asked about
                bounds = [rec.get("start"), rec.get("end")]
                if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
                    raise BenchmarkError(f"{where}: fields 'start'/'end' = {bounds} must both be numbers of seconds")
                meta["window"] = [float(b) for b in bounds]
            video = _field(rec, "video", where)
            rows.append(_row({
                "id": f"mvbench/{task}/{i}", "video": _find_video(root, [video]),
                "problem": _field(rec, "question", where), "solution": string.ascii_uppercase[cands.index(answer)],
                "problem_type": "mcq", "options": [f"{string.ascii_uppercase[j]}. {c}" for j, c in enumerate(cands)],
                "source": "mvbench", "split": "test", "meta": meta,
            }, where))
    return rows


# ---- DREAM-1K (omni-research/DREAM-1K json/metadata.json: [{idx, video_file, description, source, duration,
#      n_subjects, n_shots, n_events}]) ----

def load_dream1k(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """DREAM-1K rows (caption): the reference description is the solution, scored with AutoDQ (paper §6)."""
    path = Path(path)
    root = Path(video_root) if video_root else path.parent
    rows = []
    for where, rec in _read_json_records(path, "dream1k"):
        idx = rec.get("idx") if isinstance(rec, dict) else None
        if idx is None:
            raise BenchmarkError(f"{where}: field 'idx' is missing")
        video_file = _field(rec, "video_file", where)
        meta = {k: rec[k] for k in ("source", "duration", "n_subjects", "n_shots", "n_events") if k in rec}
        rows.append(_row({
            "id": f"dream1k/{idx}", "video": _find_video(root, [video_file, Path(video_file).name]),
            "problem": CAPTION_PROMPT, "solution": _field(rec, "description", where), "problem_type": "caption",
            "source": "dream1k", "split": "test", "meta": meta,
        }, f"{where} (idx {idx})"))
    return rows


# ---- NExT-QA multiple choice (doc-doc/NExT-QA val.csv: video, frame_count, width, height, question, answer,
#      qid, type, a0..a4) ----

NEXTQA_COLUMNS = ("video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")


def load_nextqa(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """NExT-QA rows (mcq, five options); `answer` is the 0-based index of the right option."""
    path = Path(path)
    if not path.is_file():
        raise _missing("nextqa", "CSV file", path)
    root = Path(video_root) if video_root else path.parent
    mapping: dict[str, str] = {}
    for cand in (path.parent / "map_vid_vidorID.json", root / "map_vid_vidorID.json"):
        if cand.is_file():
            try:
                mapping = json.loads(cand.read_text())
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{cand}: not valid JSON ({e.msg}, line {e.lineno})") from None
            break
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in NEXTQA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchmarkError(f"{path}: header lacks column(s) {missing}; expected {list(NEXTQA_COLUMNS)}")
        for lineno, rec in enumerate(reader, 2):  # line 1 is the header
            where = f"{path}:{lineno}"
            try:
                answer = int(rec["answer"])
            except (TypeError, ValueError):
                raise BenchmarkError(f"{where}: field 'answer' = {rec['answer']!r} is not an option index 0-4"
                                     ) from None
            if not 0 <= answer <= 4:
                raise BenchmarkError(f"{where}: field 'answer' = {answer} is not an option index 0-4")
            for key in ("video", "question", "qid") + tuple(f"a{j}" for j in range(5)):
                if not (rec.get(key) or "").strip():
                    raise BenchmarkError(f"{where}: field '{key}' is empty")
            vid = rec["video"].strip()
            rows.append(_row({
                "id": f"nextqa/{vid}/{rec['qid'].strip()}", "video": _find_video(root, [mapping.get(vid, vid)]),
                "problem": rec["question"].strip(), "solution": "ABCDE"[answer], "problem_type": "mcq",
                "options": [f"{'ABCDE'[j]}. {rec[f'a{j}'].strip()}" for j in range(5)],
                "source": "nextqa", "split": "test", "meta": {"type": (rec.get("type") or "").strip()},
            }, where))
    return rows


LOADERS: dict[str, Callable[..., list[Row]]] = {
    "videomme": load_videomme, "mvbench": load_mvbench, "dream1k": load_dream1k, "nextqa": load_nextqa,
}


def check_videos(rows: list[Row], fmt: str) -> None:
    """Every row's video exists as a file; else one BenchmarkMissing listing the first few and the layout."""
    missing = [p for r in rows for p in r.paths if not Path(p).is_file()]
    if missing:
        dirs = [p for p in missing if Path(p).is_dir()]
        if dirs:
            raise BenchmarkError(f"{dirs[0]}: a folder of frames, not a video file; vvkit reads video files "
                                 f"(write the frames to an mp4 with vvkit.video.write_video)")
        shown = "\n  ".join(missing[:5])
        raise BenchmarkMissing(f"{len(missing)} of {len(rows)} videos not found, e.g.\n  {shown}\nPut {LAYOUT[fmt]}.")


def load_benchmark(fmt: str, path: str | os.PathLike, video_root: Any = None, max_rows: int | None = None,
                   require_videos: bool = True) -> list[Row]:
    """Rows of one local benchmark copy: `fmt` is one of LOADERS; the first `max_rows` rows (in file order)."""
    if fmt not in LOADERS:
        raise ValueError(f"benchmark format {fmt!r} unknown; choose one of {sorted(LOADERS)}")
    rows = LOADERS[fmt](path, video_root)
    if max_rows is not None:
        rows = rows[:max_rows]
    if require_videos:
        check_videos(rows, fmt)
    return rows


BENCHMARK_KEYS = ("format", "path", "video_root", "frames", "max_rows")


def benchmark_spec(name: str, spec: dict) -> dict:
    """Validate one `analysis.benchmarks.<name>` entry: {format, path, video_root?, frames?, max_rows?}."""
    if not isinstance(spec, dict):
        raise BenchmarkError(f"benchmarks.{name}: expected a mapping with keys {list(BENCHMARK_KEYS)}, got {spec!r}")
    unknown = sorted(set(spec) - set(BENCHMARK_KEYS))
    if unknown:
        raise BenchmarkError(f"benchmarks.{name}: unknown key(s) {unknown}; valid keys: {list(BENCHMARK_KEYS)}")
    fmt = spec.get("format", name)
    if fmt not in LOADERS:
        raise BenchmarkError(f"benchmarks.{name}: format {fmt!r} unknown; choose one of {sorted(LOADERS)}")
    if not spec.get("path"):
        raise BenchmarkError(f"benchmarks.{name}: 'path' is required (the local annotation file)")
    return {"format": fmt, "path": spec["path"], "video_root": spec.get("video_root"),
            "frames": spec.get("frames") or {}, "max_rows": spec.get("max_rows")}


def evaluate_benchmarks(policies: dict[str, Any], benchmarks: dict, cfg: Any, out_root: str | os.PathLike,
                        generate_fn: Any = None, judge: Any = None) -> dict[str, dict[str, Any]]:
    """Every configured benchmark for every policy (name -> folder), with the real video; a benchmark's `frames`
    override the shared frame policy (paper §6: QA at 1 fps <= 128 frames, captions 16 frames). Results go to
    <out_root>/<policy>/benchmarks/<name>/ and are resumable like any evaluation."""
    import dataclasses

    from vvkit.evaluate import as_eval_config, evaluate

    base = as_eval_config(cfg)
    specs = {name: benchmark_spec(name, spec) for name, spec in benchmarks.items()}
    rows = {name: load_benchmark(s["format"], s["path"], s["video_root"], s["max_rows"]) for name, s in specs.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, s in specs.items():
        bench_cfg = dataclasses.replace(base, frames={**base.frames, **s["frames"]})
        for policy_name, folder in policies.items():
            out.setdefault(name, {})[policy_name] = evaluate(
                folder, rows[name], bench_cfg, Path(out_root) / policy_name / "benchmarks" / name,
                generate_fn=generate_fn, judge=judge, policy_name=policy_name)
    return out


__all__ = ["BenchmarkError", "BenchmarkMissing", "LOADERS", "benchmark_spec", "check_videos", "evaluate_benchmarks",
           "load_benchmark", "load_dream1k", "load_mvbench", "load_nextqa", "load_videomme"]
