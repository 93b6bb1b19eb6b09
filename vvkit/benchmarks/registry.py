"""The benchmark formats by name, one configured benchmark loaded and checked, and every configured benchmark
evaluated for every policy with its own frame policy (paper §6)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

from vvkit.benchmarks.breakdown import attach_breakdown
from vvkit.benchmarks.common import BenchmarkError, check_videos
from vvkit.benchmarks.dream1k import load_dream1k
from vvkit.benchmarks.mvbench import load_mvbench
from vvkit.benchmarks.nextqa import load_nextqa
from vvkit.benchmarks.videomme import load_videomme
from vvkit.config import EvalConfig
from vvkit.evaluate import evaluate
from vvkit.schema import Row

LOADERS: dict[str, Callable[..., list[Row]]] = {
    "videomme": load_videomme, "mvbench": load_mvbench, "dream1k": load_dream1k, "nextqa": load_nextqa,
}


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
