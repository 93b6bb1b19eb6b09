"""Study lever "a thought that carries what was seen" (docs/results.md, the study's levers): continue the shipped
start's supervised training on single unedited clips of its own toy world, with a think that describes the clip (its
caption) instead of one fixed sentence, and write the result as a start folder the study can load:

    .venv/bin/python benchmarks/lever_describing_think.py [--steps 600] [--videos 4000]
    .venv/bin/python benchmarks/bench_study.py --seeds 0 --arms start grpo --profile-steps 0 \\
        --params benchmarks/.cache/describing_think/params.yaml --out benchmarks/results/study_lever_describe.json

The second command runs the study from that start with room for the longer think (the params file this script
writes: params/default.yaml with `instruct_start` pointing at the new start and 24 more tokens for GRPO's
completions and the evaluation's answers), so compare its start and GRPO rows with each other, not with study.json.

Like the shipped start, it never sees a dark or interleaved video, nor any of the study's videos (its world is
params/instruct_start.yaml's, seed 101). A caption names the shape, its colour and what it does, so a policy that
thinks it before answering has something to carry across a dark span (paper §3.1: DarkEventInfer asks for the hidden
event from the context around it).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import yaml

from vvkit import study as S
from vvkit.config import read_params, stage_config
from vvkit.data import INSTRUCT_TASKS, video_of
from vvkit.instruct import sft_config
from vvkit.io import atomic_write_text
from vvkit.schema import load_rows, save_rows
from vvkit.sft import warm_start
from vvkit.shipped_start import read_manifest, shipped_start, write_start

ROOT = Path(__file__).resolve().parents[1]


def describing_rows(train: list, fixed: str) -> tuple[list, int]:
    """The unedited single-clip rows, the questions thinking their clip's caption (a caption row thinks the `fixed`
    sentence: its answer is the caption); and how many question rows had no caption to think (their video holds no
    caption row), which are left out."""
    caption = {video_of(r): r.solution for r in train if r.problem_type == "caption" and not r.edits}
    keep = [r for r in train if r.problem_type in INSTRUCT_TASKS and not r.edits]
    rows = [dataclasses.replace(r, meta={**r.meta, "reasoning": fixed if r.problem_type == "caption"
                                         else caption[video_of(r)]})
            for r in keep if r.problem_type == "caption" or video_of(r) in caption]
    return rows, len(keep) - len(rows)


def study_params(start: Path, extra_tokens: int) -> dict:
    """params/default.yaml from `start`, with `extra_tokens` more room for the think in GRPO and in the evaluation."""
    params = read_params(ROOT / "params" / "default.yaml")
    g, a = params["grpo_training"], params["analysis"]
    g["instruct_start"] = str(start.relative_to(ROOT) if start.is_relative_to(ROOT) else start)  # a path in the repo
    g["max_completion_length"] = int(g["max_completion_length"]) + extra_tokens
    a["max_new_tokens"] = int(a["max_new_tokens"]) + extra_tokens
    return params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "instruct_start.yaml"))
    ap.add_argument("--start", default="starts/instruct-tiny", help="the start to continue from")
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / ".cache" / "describing_think"))
    ap.add_argument("--videos", type=int, default=4000, help="videos of the start's world to render")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--extra-tokens", type=int, default=24, help="more completion tokens for the longer think")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0, work = time.perf_counter(), Path(args.work)
    params = read_params(args.params)
    params["data_synthesis"]["num_videos"] = args.videos
    data = S.build_data(params, work)
    cfg = stage_config(params, "grpo_training", run_dir=str(work / "run"), overrides={"disable_tqdm": True})
    rows, no_caption = describing_rows(load_rows(data / "train.jsonl"), cfg.sft_reasoning)
    if not rows:
        raise ValueError(f"{data / 'train.jsonl'}: no unedited single-clip rows with a caption of their video")
    asks = [r for r in rows if r.problem_type != "caption"]
    print(f"{len(rows)} rows, {len(asks)} questions thinking their clip's caption ({no_caption} left out: their video "
          f"has no caption row), e.g. {asks[0].meta['reasoning']!r}" if asks else f"{len(rows)} rows", flush=True)
    save_rows(rows, work / "rows.jsonl")
    base = shipped_start(args.start)
    policy = warm_start(sft_config(cfg, work / "sft", base, work / "rows.jsonl", args.steps, cfg.sft_batch_size,
                                   cfg.instruct_seed))
    manifest = {"recipe": {**read_manifest(base)["recipe"], "continued_steps": args.steps,
                           "reasoning": "the clip's caption", "videos": args.videos},
                "base": args.start, "rows": {"train": len(rows), "no_caption": no_caption},
                "never_seen": ["dark_event", "mixvid"], "train_seconds": round(time.perf_counter() - t0, 1)}
    out = write_start(policy, work / "start", manifest)
    atomic_write_text(work / "params.yaml", yaml.safe_dump(study_params(out, args.extra_tokens), sort_keys=False))
    print(f"-> {out}, {work / 'params.yaml'}  ({json.dumps(manifest['rows'])}, {manifest['train_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
