"""Benchmark adapters: LOCAL copies of Video-MME, MVBench, DREAM-1K and NExT-QA, in their published layouts, read
into vvkit rows (`problem_type` mcq or caption) so `vvkit.evaluate.evaluate` scores them like the toy-world rows,
and the official scorers' breakdowns of the results. One file per benchmark, as lmms-eval keeps one task a folder.

The paper evaluates on these (paper §6: QA at 1 fps / <= 128 frames, captions at 16 uniform frames; set that per
benchmark with a `frames` entry). Nothing is downloaded; a missing file says what to put where, and a malformed one
raises `BenchmarkError` naming the file, the line or row, and the field. Each reader's module lists its layouts.
"""
from vvkit.benchmarks.breakdown import (
    BREAKDOWN_AXES, attach_breakdown, breakdown, breakdown_table, comparison_table, headline_score,
)
from vvkit.benchmarks.common import LAYOUT, BenchmarkError, BenchmarkMissing, check_videos
from vvkit.benchmarks.dream1k import load_dream1k
from vvkit.benchmarks.mvbench import MVBENCH_VIDEO_DIRS, load_mvbench
from vvkit.benchmarks.nextqa import load_nextqa
from vvkit.benchmarks.registry import BENCHMARK_KEYS, LOADERS, benchmark_spec, evaluate_benchmarks, load_benchmark
from vvkit.benchmarks.videomme import load_videomme

__all__ = ["BENCHMARK_KEYS", "BREAKDOWN_AXES", "BenchmarkError", "BenchmarkMissing", "LAYOUT", "LOADERS",
           "MVBENCH_VIDEO_DIRS", "attach_breakdown", "benchmark_spec", "breakdown", "breakdown_table", "check_videos",
           "comparison_table", "evaluate_benchmarks", "headline_score", "load_benchmark", "load_dream1k",
           "load_mvbench", "load_nextqa", "load_videomme"]
