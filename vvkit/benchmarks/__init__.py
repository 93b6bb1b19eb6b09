"""Benchmark adapters and the official breakdowns; the package re-exports its public API."""
from vvkit.benchmarks.breakdown import *  # noqa: F401,F403
from vvkit.benchmarks.breakdown import __all__  # noqa: F401
