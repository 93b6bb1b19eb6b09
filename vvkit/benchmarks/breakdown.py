"""Benchmark adapters: LOCAL copies of Video-MME, MVBench, DREAM-1K and NExT-QA, in their published layouts, read
into vvkit rows (`problem_type` mcq or caption) so `vvkit.evaluate.evaluate` scores them like the toy-world rows,
and the official scorers' breakdowns of the results.

The paper evaluates on these (paper §6: QA at 1 fps / <= 128 frames, captions at 16 uniform frames; set that per
benchmark with a `frames` entry). Layouts read (nothing is downloaded; a missing file says what to put where, and a
malformed one raises `BenchmarkError` naming the file, the line or row, and the field):

- Video-MME: lmms-lab/Video-MME `videomme/test-00000-of-00001.parquet` (or a JSON list / JSONL of its columns), videos
  as `<root>/data/<videoID>.mp4` (lmms-eval), `<root>/video/<videoID>.mp4` (VLMEvalKit) or `<root>/<videoID>.mp4`.
- MVBench: OpenGVLab/MVBench `json/<task>.json`, videos in each task's own folder under `<root>/video/` (the hub,
  VLMEvalKit) or `<root>/` (lmms-eval's copy, with pre-cut `*_segment` folders), or `{task: folder}`.
- DREAM-1K: the hub's `json/metadata.json`, or Tarsier's `data/annotations/DREAM-1k.jsonl` (chat messages with the
  reference under `messages[1].content[0].reference`, or the older flat `text.response`); the annotated `events`
  are kept (`meta["events"]`) for AutoDQ's recall.
- NExT-QA: doc-doc/NExT-QA `val.csv` / `test.csv`, videos as `<root>/<vidorID>.mp4` (`map_vid_vidorID.json` beside
  the CSV) or flat as `<root>/<video>.mp4` / `<root>/NExTVideo/<video>.mp4` (lmms-eval).
"""
from __future__ import annotations

import csv
import json
import math
import os
import string
from pathlib import Path
from typing import Any, Callable, Sequence

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


def _find_video(roots: Sequence[Path], names: Sequence[str], subdirs: Sequence[str] = ("",)) -> str:
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


def _roots(path: Path, video_root: str | os.PathLike | None, up: int = 1) -> list[Path]:
    """Where videos may lie: the given root, else the annotation's folder and `up` folders above it."""
    if video_root:
        return [Path(video_root)]
    roots = [path.parent]
    for _ in range(up):
        roots.append(roots[-1].parent)
    return list(dict.fromkeys(roots))


def _letters_of(options: list[str], where: str) -> str:
    """The option letters of 'A. ...' strings, or a BenchmarkError naming the field."""
    letters = "".join(o.split(".", 1)[0].strip() for o in options)
    if len(letters) != len(options) or letters != string.ascii_uppercase[: len(options)]:
        raise BenchmarkError(f"{where}: field 'options' must be 'A. ...', 'B. ...' strings in order, got {options!r}")
    return letters


# ---- Video-MME (lmms-lab/Video-MME: video_id, duration, domain, sub_category, url, videoID, question_id,
#      task_type, question, options ["A. ...", ...], answer "A") ----

VIDEOMME_SUBDIRS = ("", "data", "video", "videos")  # flat, lmms-eval's data/, VLMEvalKit's video/


def _videomme_file(path: Path) -> Path:
    """The annotation file: `path` itself, or inside a dataset folder videomme/test-*.parquet or *.parquet."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("videomme/*.parquet")) or sorted(path.glob("*.parquet"))
    if not found:
        raise _missing("videomme", "annotation parquet (videomme/test-00000-of-00001.parquet)", path)
    return found[0]


def load_videomme(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """Video-MME rows (mcq) from the published parquet (or its dataset folder) or a JSON list/JSONL of its columns;
    duration, domain, sub_category and task_type are kept in `meta` for the breakdowns."""
    path = _videomme_file(Path(path))
    roots = _roots(path, video_root, up=1)  # videomme/test.parquet sits one folder below data/ and video/
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
        letters = _letters_of(options, where)
        answer = _field(rec, "answer", where).strip()
        if answer not in letters:
            raise BenchmarkError(f"{where}: field 'answer' = {answer!r} is not one of the option letters {letters}")
        video_id = _field(rec, "videoID", where)
        meta = {k: str(rec[k]) for k in ("video_id", "duration", "domain", "sub_category", "task_type")
                if rec.get(k) is not None}
        rows.append(_row({
            "id": f"videomme/{qid}", "video": _find_video(roots, [video_id], VIDEOMME_SUBDIRS),
            "problem": _field(rec, "question", where), "solution": answer,
            "problem_type": "mcq", "options": options, "source": "videomme", "split": "test", "meta": meta,
        }, where))
    return rows


# ---- MVBench (OpenGVLab/MVBench json/<task>.json: [{video, question, candidates, answer, start?, end?}]) ----

# Each task's video folder: the hub's (OpenGVLab/MVBench video/..., as VLMEvalKit lists them) first, then lmms-eval's
# copy, whose `*_segment` folders hold clips already cut to [start, end].
MVBENCH_VIDEO_DIRS: dict[str, tuple[str, ...]] = {
    "action_sequence": ("star/Charades_v1_480", "star/Charades_segment"),
    "action_prediction": ("star/Charades_v1_480", "star/Charades_segment"),
    "action_antonym": ("ssv2_video", "ssv2_video_mp4"),
    "fine_grained_action": ("Moments_in_Time_Raw/videos",),
    "unexpected_action": ("FunQA_test/test",),
    "object_existence": ("clevrer/video_validation",),
    "object_interaction": ("star/Charades_v1_480", "star/Charades_segment"),
    "object_shuffle": ("perception/videos",),
    "moving_direction": ("clevrer/video_validation",),
    "action_localization": ("sta/sta_video", "sta/sta_video_segment"),
    "scene_transition": ("scene_qa/video",),
    "action_count": ("perception/videos",),
    "moving_count": ("clevrer/video_validation",),
    "moving_attribute": ("clevrer/video_validation",),
    "state_change": ("perception/videos",),
    "fine_grained_pose": ("nturgbd", "nturgbd_convert"),
    "character_order": ("perception/videos",),
    "egocentric_navigation": ("vlnqa",),
    "episodic_reasoning": ("tvqa/frames_fps3_hq", "tvqa/video_fps3_hq_segment"),
    "counterfactual_inference": ("clevrer/video_validation",),
}


def _mvbench_files(path: Path) -> tuple[list[Path], Path]:
    """(task files, dataset root) from a task file, the json/ folder or the dataset root holding json/."""
    if path.is_file():
        return [path], path.parent.parent if path.parent.name == "json" else path.parent
    if path.is_dir():
        folder = path / "json" if (path / "json").is_dir() else path
        files = sorted(folder.glob("*.json"))
        if not files:
            raise _missing("mvbench", "task files (json/<task>.json)", folder)
        return files, folder.parent if folder.name == "json" else folder
    raise _missing("mvbench", "task file, json/ folder or dataset root", path)


def _mvbench_video(task: str, video: str, root: Path, video_root: Any, where: str) -> tuple[str, bool]:
    """(path, whether the clip is already cut to its window) of one MVBench video."""
    if isinstance(video_root, dict):
        if task not in video_root:
            raise BenchmarkError(f"{where}: no video folder for task {task!r} in video_root; add {task}: <folder>")
        return _find_video([Path(video_root[task])], [video]), False
    base = Path(video_root) if video_root else root
    dirs = MVBENCH_VIDEO_DIRS.get(task, ())
    subdirs = [f"video/{d}" for d in dirs] + list(dirs) + [f"video/data0613/{d}" for d in dirs] + ["video", ""]
    found = _find_video([base], [video], subdirs)
    segment = any(part.endswith("_segment") for part in Path(found).parts)
    return found, segment


def load_mvbench(path: str | os.PathLike, video_root: str | os.PathLike | dict | None = None) -> list[Row]:
    """MVBench rows (mcq): one task file, the json/ folder or the dataset root; the answer text becomes the letter
    of its candidate, `meta["task"]` is the task (the per-task breakdown) and `meta["window"]` the part of the video
    asked about (left out for lmms-eval's pre-cut `*_segment` clips)."""
    files, root = _mvbench_files(Path(path))
    rows = []
    for f in files:
        task = f.stem
        for i, (where, rec) in enumerate(_read_json_records(f, "mvbench")):
            cands = _field(rec, "candidates", where, list)
            answer = _field(rec, "answer", where)
            if not all(isinstance(c, str) for c in cands) or not 2 <= len(cands) <= 26:
                raise BenchmarkError(f"{where}: field 'candidates' must be 2-26 strings, got {cands!r}")
            if answer not in cands:
                raise BenchmarkError(f"{where}: field 'answer' {answer!r} is not one of the candidates {cands}")
            video, cut = _mvbench_video(task, _field(rec, "video", where), root, video_root, where)
            meta: dict[str, Any] = {"task": task}
            if (rec.get("start") is not None or rec.get("end") is not None) and not cut:
                bounds = [rec.get("start"), rec.get("end")]
                if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
                    raise BenchmarkError(f"{where}: fields 'start'/'end' = {bounds} must both be numbers of seconds")
                meta["window"] = [float(b) for b in bounds]
            rows.append(_row({
                "id": f"mvbench/{task}/{i}", "video": video,
                "problem": _field(rec, "question", where), "solution": string.ascii_uppercase[cands.index(answer)],
                "problem_type": "mcq", "options": [f"{string.ascii_uppercase[j]}. {c}" for j, c in enumerate(cands)],
                "source": "mvbench", "split": "test", "meta": meta,
            }, where))
    return rows


# ---- DREAM-1K: the hub's json/metadata.json [{idx, video_file, description, events?, source, duration, n_subjects,
#      n_shots, n_events}], or Tarsier's data/annotations/DREAM-1k.jsonl, one record a line, either
#      {messages: [user {content: [video {video: {video_file}}, text]}, assistant {content: [{reference}]}],
#       dataset: "DREAM/<source>", idx, vid, extra_info: {events, duration, n_events, n_shots, n_subjects}}
#      or the older flat {idx, dataset, text: {prompt, response}, video_file, extra_info, vid} ----

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
        description = _field(rec, "description", where)
        names.append(_field(rec, "video_file", where))
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
    roots = _roots(path, video_root, up=2)
    rows = []
    for where, rec in _read_json_records(path, "dream1k"):
        d = _dream_record(rec, where)
        meta: dict[str, Any] = {**d["extra"]}
        if d["source"]:
            meta["source"] = d["source"]
        if d["events"]:
            meta["events"] = d["events"]
        rows.append(_row({
            "id": f"dream1k/{d['idx']}", "video": _find_video(roots, d["names"], DREAM_SUBDIRS),
            "problem": CAPTION_PROMPT, "solution": d["description"], "problem_type": "caption",
            "source": "dream1k", "split": "test", "meta": meta,
        }, f"{where} (idx {d['idx']})"))
    return rows


# ---- NExT-QA multiple choice (doc-doc/NExT-QA val.csv: video, frame_count, width, height, question, answer,
#      qid, type, a0..a4) ----

NEXTQA_COLUMNS = ("video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")
NEXTQA_SUBDIRS = ("", "NExTVideo", "videos")  # mapped or flat under the root, lmms-eval's NExTVideo/


def load_nextqa(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """NExT-QA rows (mcq, five options); `answer` is the 0-based index of the right option. Videos are looked up
    by their mapped `vidorID` path (map_vid_vidorID.json) and by the flat `<video>.mp4` name."""
    path = Path(path)
    if not path.is_file():
        raise _missing("nextqa", "CSV file", path)
    roots = _roots(path, video_root, up=1)
    mapping: dict[str, str] = {}
    for cand in [path.parent / "map_vid_vidorID.json"] + [r / "map_vid_vidorID.json" for r in roots]:
        if cand.is_file():
            try:
                mapping = json.loads(cand.read_text())
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{cand}: not valid JSON ({e.msg}, line {e.lineno})") from None
            if not isinstance(mapping, dict):
                raise BenchmarkError(f"{cand}: expected an object {{video: vidorID path}}, got {type(mapping).__name__}")
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
            names = list(dict.fromkeys([str(mapping[vid]), vid] if vid in mapping else [vid]))
            rows.append(_row({
                "id": f"nextqa/{vid}/{rec['qid'].strip()}", "video": _find_video(roots, names, NEXTQA_SUBDIRS),
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
    <out_root>/<policy>/benchmarks/<name>/ and are resumable like any evaluation; each result gets the official
    scorer's breakdown (`breakdown`) as `result.header["breakdown"]`, also written into its results.json."""
    import dataclasses

    from vvkit.evaluate import EvalConfig, evaluate

    base = EvalConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(EvalConfig) if hasattr(cfg, f.name)})
    specs = {name: benchmark_spec(name, spec) for name, spec in benchmarks.items()}
    rows = {name: load_benchmark(s["format"], s["path"], s["video_root"], s["max_rows"]) for name, s in specs.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, s in specs.items():
        bench_cfg = dataclasses.replace(base, frames={**base.frames, **s["frames"]})
        for policy_name, folder in policies.items():
            folder_out = Path(out_root) / policy_name / "benchmarks" / name
            result = evaluate(folder, rows[name], bench_cfg, folder_out, generate_fn=generate_fn, judge=judge,
                              policy_name=policy_name)
            attach_breakdown(result, rows[name], s["format"])
            out.setdefault(name, {})[policy_name] = result
    return out


def attach_breakdown(result: Any, rows: Sequence[Row], benchmark: str) -> dict:
    """Compute `breakdown(result.predictions, rows, benchmark)`, store it as `result.header["breakdown"]` and, when
    the result has a folder, under the "breakdown" key of its results.json (next to "metrics")."""
    from vvkit.io import atomic_write_json

    bd = breakdown(result.predictions, rows, benchmark)
    result.header["breakdown"] = bd
    folder = getattr(result, "out_dir", None)
    if folder is not None and (Path(folder) / "results.json").is_file():
        data = json.loads((Path(folder) / "results.json").read_text())
        atomic_write_json(Path(folder) / "results.json", {**data, "benchmark": benchmark, "breakdown": bd})
    return bd


# ---- breakdowns, computed as the official scorers group them ----

# Video-MME's groups in the order its scorer (lmms-eval videomme utils) prints them.
VIDEOMME_DURATIONS = ("short", "medium", "long")
VIDEOMME_DOMAINS = ("Knowledge", "Film & Television", "Sports Competition", "Artistic Performance", "Life Record",
                    "Multilingual")
VIDEOMME_TASK_TYPES = ("Temporal Perception", "Spatial Perception", "Attribute Perception", "Action Recognition",
                       "Object Recognition", "OCR Problems", "Counting Problem", "Temporal Reasoning",
                       "Spatial Reasoning", "Action Reasoning", "Object Reasoning", "Information Synopsis")
# NExT-QA's question types (eval_mc.py): causal Why/How, temporal Before&After/When, descriptive Count/Location/Other;
# TP (previous) is counted with TN (next) as Before&After.
NEXTQA_TYPES = ("CW", "CH", "TN", "TC", "DC", "DL", "DO")
NEXTQA_GROUPS = ("C", "T", "D")
NEXTQA_NAMES = {"CW": "Why", "CH": "How", "TN": "Bef&Aft", "TC": "When", "DC": "Cnt", "DL": "Loc", "DO": "Other",
                "C": "Acc_C", "T": "Acc_T", "D": "Acc_D"}
BREAKDOWN_AXES = {
    "videomme": {"duration": VIDEOMME_DURATIONS, "domain": VIDEOMME_DOMAINS, "task_type": VIDEOMME_TASK_TYPES,
                 "sub_category": ()},
    "nextqa": {"group": NEXTQA_GROUPS, "type": NEXTQA_TYPES},
    "mvbench": {"task": tuple(MVBENCH_VIDEO_DIRS)},
    "dream1k": {"source": ()},
}


def _nextqa_type(row: Row) -> str:
    t = str(row.meta.get("type", "")).strip().upper()
    return "TN" if t == "TP" else t


def _group_key(row: Row, benchmark: str, axis: str) -> str | None:
    if benchmark == "nextqa":
        t = _nextqa_type(row)
        return (t[:1] if axis == "group" else t) or None
    value = row.meta.get(axis)
    return None if value is None or value == "" else str(value)


def _mcq_cell(preds: list[dict]) -> dict:
    scores = [float(p["score"]) for p in preds if p.get("score") is not None]
    return {"n": len(preds), "accuracy": sum(scores) / len(scores) if scores else math.nan,
            "answered": sum(p.get("choice") is not None for p in preds) / len(preds) if preds else math.nan}


def _caption_cell(preds: list[dict]) -> dict:
    """DREAM-1K's summary: precision and recall averaged over videos, F1 of the two averages (Tarsier's scorer)."""
    ok = [p for p in preds if p.get("precision") is not None and p.get("recall") is not None]
    prec = sum(p["precision"] for p in ok) / len(ok) if ok else math.nan
    rec = sum(p["recall"] for p in ok) / len(ok) if ok else math.nan
    f1 = 2 * prec * rec / (prec + rec) if ok and prec + rec > 0 else (0.0 if ok else math.nan)
    return {"n": len(preds), "precision": prec, "recall": rec, "f1": f1, "failed": len(preds) - len(ok)}


def breakdown(predictions: Sequence[dict], rows: Sequence[Row], benchmark: str) -> dict:
    """The official scorer's groups of one benchmark's prediction records (joined to `rows` by id):
    {"overall": cell, axis: {group: cell}} with cell {n, accuracy, answered} for multiple choice, {n, precision,
    recall, f1, failed} for DREAM-1K. Video-MME by duration, domain, task type and sub-category (lmms-eval's
    videomme scorer); NExT-QA by question group C / T / D and type, TP merged into TN (NExT-QA's eval_mc.py);
    MVBench per task plus "task_mean", the mean over tasks (MVBench reports that average); DREAM-1K by source.
    Groups come in the scorer's order; groups with no rows are left out."""
    if benchmark not in BREAKDOWN_AXES:
        raise ValueError(f"benchmark {benchmark!r} has no breakdown; choose one of {sorted(BREAKDOWN_AXES)}")
    by_id = {r.id: r for r in rows}
    unknown = [p["id"] for p in predictions if p["id"] not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} prediction(s) have no row (e.g. {unknown[0]!r}); pass the benchmark's rows")
    cell = _caption_cell if benchmark == "dream1k" else _mcq_cell
    out: dict[str, Any] = {"benchmark": benchmark, "overall": cell(list(predictions))}
    for axis, order in BREAKDOWN_AXES[benchmark].items():
        groups: dict[str, list[dict]] = {}
        for p in predictions:
            key = _group_key(by_id[p["id"]], benchmark, axis)
            if key is not None:
                groups.setdefault(key, []).append(p)
        if not groups:
            continue
        names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
        out[axis] = {g: cell(groups[g]) for g in names}
    if benchmark == "mvbench" and out.get("task"):
        accs = [c["accuracy"] for c in out["task"].values() if not math.isnan(c["accuracy"])]
        out["task_mean"] = sum(accs) / len(accs) if accs else math.nan
    return out


def headline(bd: dict) -> float:
    """The number a benchmark's table reports, in percent: accuracy (MVBench: the mean over tasks), or DREAM-1K's
    AutoDQ F1."""
    if bd["benchmark"] == "mvbench" and "task_mean" in bd:
        return 100.0 * bd["task_mean"]
    key = "f1" if bd["benchmark"] == "dream1k" else "accuracy"
    return 100.0 * bd["overall"][key]


def _pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100.0 * x:.1f}"


def breakdown_table(bd: dict) -> str:
    """A markdown table of one breakdown: one line per group (axis, group, n, and the benchmark's numbers in %)."""
    keys = ("precision", "recall", "f1") if bd["benchmark"] == "dream1k" else ("accuracy", "answered")
    lines = ["| axis | group | n | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]

    def line(axis: str, group: str, c: dict) -> str:
        return f"| {axis} | {group} | {c['n']} | " + " | ".join(_pct(c[k]) for k in keys) + " |"

    lines.append(line("overall", "all", bd["overall"]))
    for axis in BREAKDOWN_AXES[bd["benchmark"]]:
        for group, c in bd.get(axis, {}).items():
            label = f"{group} ({NEXTQA_NAMES[group]})" if bd["benchmark"] == "nextqa" and group in NEXTQA_NAMES else group
            lines.append(line(axis, label, c))
    if "task_mean" in bd:
        lines.append(f"| task mean | all tasks | {sum(c['n'] for c in bd['task'].values())} | "
                     f"{_pct(bd['task_mean'])} |" + " |" * (len(keys) - 1))
    return "\n".join(lines)


def comparison_table(measured: dict[str, dict[str, float]], reference: dict[str, dict[str, float | None]]) -> str:
    """A markdown table of measured numbers next to numbers a user enters (e.g. the paper's, see docs/results.md):
    `measured` and `reference` map a column name to {benchmark: value in %}; a "Δ" column per measured column gives
    its difference from the first reference column. Benchmarks are the union of both, in order of appearance."""
    if not measured:
        raise ValueError("comparison_table: no measured column; pass {policy: {benchmark: percent}}")
    benches = list(dict.fromkeys(b for cols in (reference, measured) for col in cols.values() for b in col))
    first = next(iter(reference.values()), {}) if reference else {}
    ref_name = next(iter(reference), None)
    head = ["benchmark", *reference, *[c for m in measured for c in (m, f"Δ {m} vs {ref_name}" if ref_name else None)
                                      if c]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(x: float | None) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"

    for b in benches:
        cells = [b] + [num(col.get(b)) for col in reference.values()]
        for col in measured.values():
            value, ref = col.get(b), first.get(b)
            cells.append(num(value))
            if ref_name:
                cells.append("–" if value is None or ref is None else f"{value - ref:+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["BREAKDOWN_AXES", "BenchmarkError", "BenchmarkMissing", "LOADERS", "MVBENCH_VIDEO_DIRS", "attach_breakdown",
           "benchmark_spec", "breakdown", "breakdown_table", "check_videos", "comparison_table", "evaluate_benchmarks",
           "headline", "load_benchmark", "load_dream1k", "load_mvbench", "load_nextqa", "load_videomme"]
