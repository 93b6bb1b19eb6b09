"""NExT-QA multiple choice (doc-doc/NExT-QA) read into mcq rows.

Annotations: `val.csv` / `test.csv` (video, frame_count, width, height, question, answer, qid, type, a0..a4). Videos:
`<root>/<vidorID>.mp4` (`map_vid_vidorID.json` beside the CSV) or flat as `<root>/<video>.mp4` /
`<root>/NExTVideo/<video>.mp4` (lmms-eval).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from vvkit.benchmarks.common import BenchmarkError, find_video, missing, to_row, video_roots
from vvkit.schema import Row

NEXTQA_COLUMNS = ("video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")
NEXTQA_SUBDIRS = ("", "NExTVideo", "videos")  # mapped or flat under the root, lmms-eval's NExTVideo/


def load_nextqa(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """NExT-QA rows (mcq, five options); `answer` is the 0-based index of the right option. Videos are looked up
    by their mapped `vidorID` path (map_vid_vidorID.json) and by the flat `<video>.mp4` name."""
    path = Path(path)
    if not path.is_file():
        raise missing("nextqa", "CSV file", path)
    roots = video_roots(path, video_root, up=1)
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
            rows.append(to_row({
                "id": f"nextqa/{vid}/{rec['qid'].strip()}", "video": find_video(roots, names, NEXTQA_SUBDIRS),
                "problem": rec["question"].strip(), "solution": "ABCDE"[answer], "problem_type": "mcq",
                "options": [f"{'ABCDE'[j]}. {rec[f'a{j}'].strip()}" for j in range(5)],
                "source": "nextqa", "split": "test", "meta": {"type": (rec.get("type") or "").strip()},
            }, where))
    return rows
