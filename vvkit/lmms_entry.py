"""`python -m vvkit.lmms_entry ARGS` is lmms-eval's command line (`python -m lmms_eval ARGS`) with vvkit's Qwen2.5-VL
position rule in place: importing `vvkit.model` wraps transformers' `get_rope_index` so the text after a video starts
at the largest vision position + 1, as Qwen2.5-VL was trained and as the kit's own evaluation places it. Without
it, a policy scored through lmms-eval would see other positions for its question and answer."""
from __future__ import annotations

import runpy
import sys

import vvkit.model  # noqa: F401  (applies the text-after-video rule to every Qwen2.5-VL in this process)

if __name__ == "__main__":
    sys.argv[0] = "lmms_eval"
    runpy.run_module("lmms_eval", run_name="__main__", alter_sys=True)
