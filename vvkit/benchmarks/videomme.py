"""Video-MME (lmms-lab/Video-MME) read into mcq rows.

Annotations: `videomme/test-00000-of-00001.parquet` (or a JSON list / JSONL of its columns: video_id, duration,
domain, sub_category, url, videoID, question_id, task_type, question, options ["A. ...", ...], answer "A"). Videos:
`<root>/data/<videoID>.mp4` (lmms-eval), `<root>/video/<videoID>.mp4` (VLMEvalKit) or `<root>/<videoID>.mp4`.
"""
from __future__ import annotations

import os
from pathlib import Path

from vvkit.benchmarks.common import (BenchmarkError, find_video, missing, option_letters, read_json_records,
                                     require_field, to_row, video_roots)
from vvkit.schema import Row

VIDEOMME_SUBDIRS = ("", "data", "video", "videos")  # flat, lmms-eval's data/, VLMEvalKit's video/


def _videomme_file(path: Path) -> Path:
    """The annotation file: `path` itself, or inside a dataset folder videomme/test-*.parquet or *.parquet."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("videomme/*.parquet")) or sorted(path.glob("*.parquet"))
    if not found:
        raise missing("videomme", "annotation parquet (videomme/test-00000-of-00001.parquet)", path)
    return found[0]


def load_videomme(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[Row]:
    """Video-MME rows (mcq) from the published parquet (or its dataset folder) or a JSON list/JSONL of its columns;
    duration, domain, sub_category and task_type are kept in `meta` for the breakdowns."""
    path = _videomme_file(Path(path))
    roots = video_roots(path, video_root, up=1)  # videomme/test.parquet sits one folder below data/ and video/
    if path.suffix == ".parquet":
        if not path.is_file():
            raise missing("videomme", "annotation file", path)
        import pandas as pd  # pandas and pyarrow only for the parquet layout

        try:
            records = pd.read_parquet(path).to_dict("records")
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise BenchmarkError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
        located = [(f"{path} row {i}", rec) for i, rec in enumerate(records)]
    else:
        located = read_json_records(path, "videomme")
    rows = []
    for where, rec in located:
        qid = require_field(rec, "question_id", where)
        where = f"{where} (question_id {qid})"
        options = rec.get("options")
        if hasattr(options, "tolist"):  # parquet list columns arrive as numpy arrays
            options = options.tolist()
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise BenchmarkError(f"{where}: field 'options' must be a list of 'A. ...' strings, got {options!r}")
        letters = option_letters(options, where)
        answer = require_field(rec, "answer", where).strip()
        if answer not in letters:
            raise BenchmarkError(f"{where}: field 'answer' = {answer!r} is not one of the option letters {letters}")
        video_id = require_field(rec, "videoID", where)
        meta = {k: str(rec[k]) for k in ("video_id", "duration", "domain", "sub_category", "task_type")
                if rec.get(k) is not None}
        rows.append(to_row({
            "id": f"videomme/{qid}", "video": find_video(roots, [video_id], VIDEOMME_SUBDIRS),
            "problem": require_field(rec, "question", where), "solution": answer,
            "problem_type": "mcq", "options": options, "source": "videomme", "split": "test", "meta": meta,
        }, where))
    return rows
