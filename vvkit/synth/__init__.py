"""Data synthesis: the toy world, DarkEventInfer, MixVidQA, annotation readers and `build_dataset` (paper §1-§3)."""
from vvkit.synth.adapters import AnnotatedVideo, AnnotationError, Event, read_annotations
from vvkit.synth.build import build_dataset, config_hash, materialize_row, output_dir
from vvkit.synth.dark_event import DarkEventSettings, make_dark_event_row
from vvkit.synth.mixvid import MixVidSettings, interleave_chunks, make_mixvid_row
from vvkit.synth.toyrender import render, render_frame
from vvkit.synth.toyworld import ToyVideo, generate

__all__ = [
    "AnnotatedVideo", "AnnotationError", "DarkEventSettings", "Event", "MixVidSettings", "ToyVideo", "build_dataset",
    "config_hash", "generate", "interleave_chunks", "make_dark_event_row", "make_mixvid_row", "materialize_row",
    "output_dir", "read_annotations", "render", "render_frame",
]
