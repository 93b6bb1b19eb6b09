"""Import the authors' released training data (`VidBridge-R1_training_data.jsonl`, paper §3) as vvkit rows.

The release has one JSON object per line with `problem`, `solution`, `problem_type` (MCQA, DarkEventInfer,
MixVidQA, caption) and `video`. Solutions are wrapped in `<answer>…</answer>`; multiple-choice options are written
inside `problem` ("…\\nOptions:\\nA. …") and the solution starts with the letter ("A. yellow tag on large sheep's
ear."). DarkEventInfer and MixVidQA videos are already edited files, so they are taken as they are (no lazy edits).
The `video` paths carry the authors' root, which is replaced by the user's video folder."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vvkit.schema import OPTION_LETTERS, Row, RowError, save_rows, validate_row

FORMATS = ("vidbridge",)
# The release's task names -> vvkit.schema.TASKS.
AUTHORS_TASKS = {"MCQA": "mcq", "DarkEventInfer": "dark_event", "MixVidQA": "mixvid", "caption": "caption"}
KNOWN_FIELDS = ("problem", "solution", "problem_type", "video")

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
_OPTIONS_HEAD = re.compile(r"^\s*(?:options|choices)\s*:?\s*$", re.IGNORECASE)
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[.):]\s*(.*\S)\s*$")
_INLINE_OPTION = re.compile(r"(?:^|\s)\(?([A-H])[.)]\s+")


class DataImportError(ValueError):
    """A line of the released file cannot be converted (raised only with strict=True), or no video was found."""


@dataclass
class ImportReport:
    """Counts per task, how many videos exist under the new root, and every line that could not be converted."""

    file: str
    rows: int = 0
    per_task: Counter = field(default_factory=Counter)
    videos_found: int = 0
    videos_missing: int = 0
    missing_examples: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: reason"
    prefix: str = ""

    def lines(self) -> list[str]:
        out = [f"{self.file}: {self.rows} rows imported "
               f"({', '.join(f'{t} {n}' for t, n in sorted(self.per_task.items()))})",
               f"  authors' root {self.prefix!r} replaced; videos found: {self.videos_found}, missing: "
               f"{self.videos_missing}" + (f" (e.g. {self.missing_examples[:3]})" if self.missing_examples else "")]
        if self.problems:
            out.append(f"  {len(self.problems)} lines not converted:")
            out += [f"    {p}" for p in self.problems[:20]]
            if len(self.problems) > 20:
                out.append(f"    ... and {len(self.problems) - 20} more")
        return out

    def to_dict(self) -> dict:
        return {"file": self.file, "rows": self.rows, "per_task": dict(self.per_task), "prefix": self.prefix,
                "videos_found": self.videos_found, "videos_missing": self.videos_missing,
                "problems": list(self.problems)}


def unwrap(solution: str) -> str:
    """'<answer> A. red </answer>' -> 'A. red' (text without tags is returned stripped)."""
    m = _ANSWER.search(solution)
    return (m.group(1) if m else solution).strip()


def split_options(problem: str) -> tuple[str, list[str]]:
    """('question', ['A. x', 'B. y', ...]) from a problem with its options written inside: one option per line
    (after an optional 'Options:' line) or inline ('… A. x B. y'). Letters must run A, B, C, … in order; the
    question keeps everything before the options."""
    lines = problem.splitlines()
    first = None
    for i, line in enumerate(lines):
        m = _OPTION_LINE.match(line)
        if m and m.group(1) == "A":
            first = i
            break
    if first is not None:
        opts, k = [], first
        while k < len(lines):
            m = _OPTION_LINE.match(lines[k])
            if not lines[k].strip():
                k += 1
                continue
            if not m or m.group(1) != OPTION_LETTERS[len(opts)]:
                break
            opts.append(f"{m.group(1)}. {m.group(2)}")
            k += 1
        head = lines[:first]
        if head and _OPTIONS_HEAD.match(head[-1]):
            head = head[:-1]
        tail = [ln for ln in lines[k:] if ln.strip()]
        question = "\n".join(head + tail).strip()
        if len(opts) >= 2 and question:
            return question, opts
    # inline: the first 'A.' / '(A)' followed by B., C., ... in order
    marks = [m for m in _INLINE_OPTION.finditer(problem)]
    starts = [m for m in marks if m.group(1) == "A"]
    if starts:
        seq = [starts[0]]
        for m in marks:
            if m.start() > seq[-1].start() and m.group(1) == OPTION_LETTERS[len(seq)]:
                seq.append(m)
        if len(seq) >= 2:
            opts = []
            for j, m in enumerate(seq):
                end = seq[j + 1].start() if j + 1 < len(seq) else len(problem)
                opts.append(f"{m.group(1)}. {problem[m.end():end].strip()}")
            question = problem[:seq[0].start()].strip()
            question = re.sub(r"(?:options|choices)\s*:?\s*$", "", question, flags=re.IGNORECASE).strip()
            if question and all(option_ok(o) for o in opts):
                return question, opts
    raise ValueError("no options A., B., ... found inside `problem`")


def option_ok(option: str) -> bool:
    return bool(option.split(".", 1)[1].strip())


def mcq_letter(solution: str, options: list[str]) -> str:
    """The solution's option letter: the authors' reward compares the solution's first character (§4)."""
    s = solution.strip().lstrip("(").strip()
    if not s or s[0] not in OPTION_LETTERS[: len(options)] or (len(s) > 1 and s[1].isalnum()):
        raise ValueError(f"solution {solution!r} does not start with an option letter among "
                         f"{list(OPTION_LETTERS[: len(options)])}")
    return s[0]


def common_root(paths: list[str]) -> str:
    """The longest folder prefix shared by every path (the authors' root, when --strip-prefix is not given)."""
    dirs = [os.path.dirname(p) for p in paths if p]
    try:
        return os.path.commonpath(dirs) if dirs else ""
    except ValueError:  # absolute and relative paths mixed: no shared root
        return ""


def remap(path: str, prefix: str, video_root: str) -> str:
    """Replace the authors' `prefix` by `video_root`; a path without the prefix is an error (wrong --strip-prefix)."""
    if prefix:
        pre = prefix.rstrip("/")
        if path != pre and not path.startswith(pre + "/"):
            raise ValueError(f"video {path!r} does not start with the prefix {prefix!r}; pass the right --strip-prefix")
        rest = path[len(pre):].lstrip("/")
    else:
        rest = path.lstrip("/")
    return str(Path(video_root) / rest)


def convert(d: dict, lineno: int, prefix: str, video_root: str, split: str = "train",
            where: str = "") -> Row:
    """One released record -> a validated vvkit Row (raises ValueError with the reason)."""
    if not isinstance(d, dict):
        raise ValueError(f"expected a JSON object, got {type(d).__name__}")
    missing = [k for k in KNOWN_FIELDS if k not in d]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    ptype = d["problem_type"]
    if ptype not in AUTHORS_TASKS:
        raise ValueError(f"problem_type {ptype!r} is not one of {list(AUTHORS_TASKS)}")
    task = AUTHORS_TASKS[ptype]
    problem, solution = d["problem"], d["solution"]
    if not isinstance(problem, str) or not problem.strip():
        raise ValueError("empty `problem`")
    if not isinstance(solution, str) or not unwrap(solution):
        raise ValueError("empty `solution` (after removing <answer> tags)")
    videos = d["video"] if isinstance(d["video"], list) else [d["video"]]
    if not videos or not all(isinstance(v, str) and v for v in videos):
        raise ValueError(f"`video` must be a path or a list of paths, got {d['video']!r}")
    paths = [remap(v, prefix, video_root) for v in videos]
    answer = unwrap(solution)
    meta = {"line": lineno, "original_problem_type": ptype, "original_video": d["video"],
            **{k: v for k, v in d.items() if k not in KNOWN_FIELDS}}
    options = None
    if task == "mcq":
        problem, options = split_options(problem)
        letter = mcq_letter(answer, options)
        meta["answer_text"] = answer
        meta["original_problem"] = d["problem"]  # the authors' exact user text, options included (paper §7)
        answer = letter
    row = Row(id=str(d.get("id") or f"vidbridge-{lineno:06d}"), video=paths[0] if len(paths) == 1 else paths,
              problem=problem.strip(), solution=answer, problem_type=task, options=options, edits=None,
              source="vidbridge", split=split, meta=meta)
    if isinstance(row.video, list):
        raise ValueError("several videos without an interleave edit; released MixVidQA videos are single files")
    try:
        return validate_row(row.to_dict(), where)
    except RowError as e:
        raise ValueError(str(e)) from None


def import_vidbridge(path: str | os.PathLike, video_root: str | os.PathLike, strip_prefix: str | None = None,
                     strict: bool = False, split: str = "train") -> tuple[list[Row], ImportReport]:
    """Convert the released jsonl: task names mapped, solutions unwrapped, MCQ options parsed out of `problem`, the
    authors' root (`strip_prefix`, else the longest folder prefix all videos share) replaced by `video_root`.
    Lines that cannot be converted are reported with their line and reason, or raise with `strict`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: released data file not found")
    report = ImportReport(str(path))
    records: list[tuple[int, object]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            records.append((lineno, ValueError(f"not valid JSON ({e.msg}, column {e.colno})")))
    if strip_prefix is None:
        vids = [v for _, d in records if isinstance(d, dict)
                for v in (d.get("video") if isinstance(d.get("video"), list) else [d.get("video")])
                if isinstance(v, str)]
        strip_prefix = common_root(vids)
    report.prefix = strip_prefix
    rows, seen = [], set()
    for lineno, d in records:
        where = f"{path}:{lineno}"
        try:
            if isinstance(d, Exception):
                raise d
            row = convert(d, lineno, strip_prefix, str(video_root), split, where)
            if row.id in seen:
                raise ValueError(f"duplicate id {row.id!r}")
        except ValueError as e:
            msg = f"{where}: {str(e).removeprefix(where + ': ')}"
            if strict:
                raise DataImportError(msg + " (strict: fix the line or drop strict to skip it)") from None
            report.problems.append(msg)
            continue
        seen.add(row.id)
        rows.append(row)
        report.per_task[row.problem_type] += 1
        if os.path.isfile(row.video):
            report.videos_found += 1
        else:
            report.videos_missing += 1
            if len(report.missing_examples) < 5:
                report.missing_examples.append(row.video)
    report.rows = len(rows)
    if rows and not report.videos_found:
        raise DataImportError(
            f"{path}: none of the {len(rows)} videos was found; the first is {rows[0].video} (the authors' "
            f"{rows[0].meta['original_video']!r}, their root {strip_prefix!r} replaced by {str(video_root)!r}). Check "
            "the authors' root to replace (--strip-prefix, data_synthesis.strip_prefix) and the folder of your "
            "videos (--video-root, data_synthesis.video_root)")
    return rows, report


def import_data(path: str | os.PathLike, fmt: str, video_root: str | os.PathLike, out: str | os.PathLike | None = None,
                strip_prefix: str | None = None, strict: bool = False) -> tuple[list[Row], ImportReport]:
    """Import `path` in format `fmt` (one of FORMATS) and, with `out`, write the rows as vvkit JSONL."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; use one of {list(FORMATS)}")
    rows, report = import_vidbridge(path, video_root, strip_prefix, strict)
    if out is not None:
        save_rows(rows, out)
    return rows, report
