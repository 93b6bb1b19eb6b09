"""Atomic file writes and JSONL helpers: outputs are written to a temp file and renamed, so a crash never
leaves a half-written result behind (a reader sees the old file or the new one, nothing in between)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write one JSON document atomically (numpy scalars and paths are converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_jsonable) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> Path:
    """Write records, one JSON object per line, atomically."""
    lines = [json.dumps(r, default=_jsonable) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one record and flush: used for resumable logs where each line is a finished unit of work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=_jsonable) + "\n")
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line raises naming the file and line. A torn last line (a crash mid-append)
    is an error too: delete it by hand if you know it is the only damage."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such JSONL file")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            out.append(obj)
    return out


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
