"""One sample schema for every task: the row format of `train.jsonl` / `test.jsonl`, a strict loader, and the
task vocabulary. The layout follows the authors' jsonl (`problem`, `solution`, `video`, `problem_type`; paper §3, §8)
and adds `options`, lazy video `edits`, `source`, `split` and `meta`. The column names are the fields of `Row`,
defined once here, as recommenders' `utils/constants.py` defines its columns."""
from __future__ import annotations

import json
import math
import os
import string
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vvkit.io import atomic_write_jsonl, read_jsonl

# The paper's five tasks, in the order every table and loop shows them: the two proxy tasks first (§1, §2), then
# the tasks an instruct model already does (§3).
TASKS = ("dark_event", "mixvid", "mcq", "open_ended", "caption")
# Each task's headline metric in `vvkit.evaluate` results: DarkEventInfer's mean judge score (0-2), MixVidQA and
# multiple-choice accuracy, the open-ended mean score, caption AutoDQ F1.
HEADLINE_METRIC = {"dark_event": "score_mean", "mixvid": "accuracy", "mcq": "accuracy", "open_ended": "score",
                   "caption": "f1"}
SPLITS = ("train", "test")
EDIT_KINDS = ("mask", "interleave")  # the lazy edits `vvkit.video.read_video` applies
OPTION_LETTERS = string.ascii_uppercase


@dataclass
class Row:
    """One training/evaluation sample. `solution` is the bare answer (a letter for mcq, text otherwise); `edits` is
    the lazy video edit spec applied by `vvkit.video.read_video` ({"mask": [[s, e]]} or {"interleave": [[i, s, e]]})."""

    id: str
    video: str | list[str]
    problem: str
    solution: str
    problem_type: str
    options: list[str] | None = None  # mcq: ["A. red", "B. blue", ...]
    edits: dict | None = None
    source: str = ""
    split: str = "train"
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict with the columns in their canonical order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "<row>") -> "Row":
        """Validate and build; `where` (e.g. "train.jsonl:12") prefixes every error."""
        return validate_row(d, where)

    @property
    def paths(self) -> list[str]:
        """The video path(s) as a list."""
        return [self.video] if isinstance(self.video, str) else list(self.video)


COLUMNS = tuple(f.name for f in fields(Row))  # the JSONL keys, in the order rows are written


class RowError(ValueError):
    """A row failed validation; the message names the file:line, the field and the fix."""


def option_letter(option: str) -> str:
    """'B. red' -> 'B' (the letter before the first '.')."""
    return option.split(".", 1)[0].strip()


def option_text(option: str) -> str:
    """'B. red' -> 'red'."""
    return option.split(".", 1)[1].strip() if "." in option else option.strip()


def _fail(where: str, key: str, msg: str) -> RowError:
    return RowError(f"{where}: field '{key}': {msg}")


def _check_span(where: str, key: str, span: Any, n: int) -> list[float]:
    if not isinstance(span, (list, tuple)) or len(span) != n:
        raise _fail(where, key, f"expected a list of {n} numbers, got {span!r}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in span):
        raise _fail(where, key, f"expected finite numbers, got {span!r}")
    if not (0 <= span[-2] < span[-1]):
        raise _fail(where, key, f"span {span!r} must satisfy 0 <= start < end")
    return list(span)


def validate_edits(edits: Any, video: str | list[str], where: str = "<row>") -> dict | None:
    """Check an edit spec against the contract of `vvkit.video.read_video`."""
    if edits is None:
        return None
    if not isinstance(edits, dict) or not edits:
        raise _fail(where, "edits", f"expected null or a non-empty object, got {edits!r}")
    unknown = set(edits) - set(EDIT_KINDS)
    if unknown:
        raise _fail(where, "edits", f"unknown edit kind(s) {sorted(unknown)}; allowed: {list(EDIT_KINDS)}")
    if "mask" in edits:
        if not isinstance(edits["mask"], list) or not edits["mask"]:
            raise _fail(where, "edits", "'mask' must be a non-empty list of [start, end] spans")
        for span in edits["mask"]:
            _check_span(where, "edits", span, 2)
    if "interleave" in edits:
        if isinstance(video, str):
            raise _fail(where, "edits", "'interleave' needs `video` to be a list of source paths")
        chunks = edits["interleave"]
        if not isinstance(chunks, list) or not chunks:
            raise _fail(where, "edits", "'interleave' must be a non-empty list of [source_idx, start, end]")
        for chunk in chunks:
            _check_span(where, "edits", chunk, 3)
            idx = chunk[0]
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(video):
                raise _fail(where, "edits", f"source index {idx!r} must be an int in [0, {len(video)})")
    return edits


def validate_row(d: Any, where: str = "<row>") -> Row:
    """Validate one raw row dict and return a `Row`. Every problem raises `RowError` naming `where` and the field;
    nothing is dropped or coerced silently."""
    if not isinstance(d, dict):
        raise RowError(f"{where}: expected a JSON object, got {type(d).__name__}")
    unknown = set(d) - set(COLUMNS)
    if unknown:
        raise _fail(where, sorted(unknown)[0], f"unknown column(s) {sorted(unknown)}; allowed: {list(COLUMNS)}")
    for key in ("id", "video", "problem", "solution", "problem_type"):
        if key not in d:
            raise _fail(where, key, "missing (required)")
    for key in ("id", "problem", "solution"):
        if not isinstance(d[key], str) or not d[key].strip():
            raise _fail(where, key, f"expected a non-empty string, got {d[key]!r}")
    video = d["video"]
    if isinstance(video, list):
        if not video or not all(isinstance(p, str) and p for p in video):
            raise _fail(where, "video", f"expected a non-empty list of paths, got {video!r}")
    elif not isinstance(video, str) or not video:
        raise _fail(where, "video", f"expected a path or a list of paths, got {video!r}")
    ptype = d["problem_type"]
    if ptype not in TASKS:
        raise _fail(where, "problem_type", f"{ptype!r} is not one of {list(TASKS)}")
    options = d.get("options")
    if ptype == "mcq":
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
            raise _fail(where, "options", "an mcq row needs a list of at least 2 option strings like 'A. red'")
        letters = [option_letter(o) for o in options]
        if letters != list(OPTION_LETTERS[: len(options)]):
            raise _fail(where, "options", f"options must be lettered A., B., ... in order, got {letters}")
        if d["solution"] not in letters:
            raise _fail(where, "solution", f"mcq solution {d['solution']!r} must be one of the option letters "
                                           f"{letters}")
    elif options is not None:
        raise _fail(where, "options", f"only mcq rows have options; use null for {ptype!r}")
    edits = validate_edits(d.get("edits"), video, where)
    split = d.get("split", "train")
    if split not in SPLITS:
        raise _fail(where, "split", f"{split!r} is not one of {list(SPLITS)}")
    source, meta = d.get("source", ""), d.get("meta", {})
    if not isinstance(source, str):
        raise _fail(where, "source", f"expected a string, got {source!r}")
    if not isinstance(meta, dict):
        raise _fail(where, "meta", f"expected an object, got {meta!r}")
    return Row(id=d["id"], video=video, problem=d["problem"], solution=d["solution"], problem_type=ptype,
               options=options, edits=edits, source=source, split=split, meta=meta)


def _resolve(p: str, base: Path) -> str:
    return p if os.path.isabs(p) else str((base / p).resolve())


def _relativize(p: str, base: Path) -> str:
    """Store paths under the JSONL's folder relative to it, so a data folder can be moved as a whole."""
    ap = Path(p).resolve()
    try:
        return ap.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(ap)


def load_rows(path: str | os.PathLike) -> list[Row]:
    """Read and validate a JSONL of rows; errors name `file:line` and the field. Relative video paths are resolved
    against the JSONL's folder. Duplicate ids are an error (they would silently double-weight a sample)."""
    path = Path(path)
    rows, seen = [], {}
    for lineno, d in enumerate(read_jsonl(path), 1):
        where = f"{path}:{lineno}"
        row = validate_row(d, where)
        if row.id in seen:
            raise _fail(where, "id", f"duplicate id {row.id!r} (first at line {seen[row.id]}); ids must be unique")
        seen[row.id] = lineno
        base = path.parent
        row.video = _resolve(row.video, base) if isinstance(row.video, str) else [_resolve(p, base) for p in row.video]
        rows.append(row)
    return rows


def save_rows(rows: list[Row], path: str | os.PathLike) -> Path:
    """Validate and write rows atomically as JSONL, with video paths relative to the file's folder when below it."""
    path = Path(path)
    out = []
    for i, row in enumerate(rows):
        d = row.to_dict()
        validate_row(d, f"{path} (row {i}, id {row.id!r})")
        v = d["video"]
        d["video"] = _relativize(v, path.parent) if isinstance(v, str) else [_relativize(p, path.parent) for p in v]
        out.append(d)
    return atomic_write_jsonl(path, out)


def to_dataset(rows: list[Row]):
    """Rows -> `datasets.Dataset` with Arrow-safe columns: `video` is always a list of paths (one for single-source
    rows), `edits` and `meta` are JSON text (Arrow would otherwise merge struct keys across rows and add None
    fields), `options` is a list or None. `from_record` turns a record back into a `Row`."""
    import datasets

    recs = []
    for r in rows:
        d = r.to_dict()
        d["video"] = r.paths
        d["edits"] = json.dumps(r.edits) if r.edits is not None else None
        d["meta"] = json.dumps(r.meta)
        recs.append(d)
    features = datasets.Features({
        "id": datasets.Value("string"), "video": datasets.Sequence(datasets.Value("string")),
        "problem": datasets.Value("string"), "solution": datasets.Value("string"),
        "problem_type": datasets.Value("string"), "options": datasets.Sequence(datasets.Value("string")),
        "edits": datasets.Value("string"), "source": datasets.Value("string"), "split": datasets.Value("string"),
        "meta": datasets.Value("string"),
    })
    return datasets.Dataset.from_list(recs, features=features)


def from_record(rec: dict, where: str = "<record>") -> Row:
    """Inverse of `to_dataset` for one record (also accepts a plain JSONL row dict)."""
    d = {k: rec[k] for k in COLUMNS if k in rec}
    if isinstance(d.get("edits"), str):
        d["edits"] = json.loads(d["edits"])
    if isinstance(d.get("meta"), str):
        d["meta"] = json.loads(d["meta"])
    v = d.get("video")
    if isinstance(v, list) and len(v) == 1 and not (d.get("edits") or {}).get("interleave"):
        d["video"] = v[0]
    if d.get("problem_type") != "mcq" and d.get("options") == []:
        d["options"] = None
    return validate_row(d, where)
