"""Build the shipped instruct start (`starts/instruct-tiny`) from `params/instruct_start.yaml`: the offline study's
stand-in for Qwen2.5-VL-7B-Instruct (vvkit.study.build_start). Run once, alone on the machine (about an hour on 2
CPU cores); killed, it resumes at its last finished stage. Commit the folder it writes.

    .venv/bin/python tools/build_start.py [--params params/instruct_start.yaml] [--out starts/instruct-tiny]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vvkit.study import build_start

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "instruct_start.yaml"))
    ap.add_argument("--out", default=str(ROOT / "starts" / "instruct-tiny"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "cache" / "instruct_start"),
                    help="data, stages and curve (resumable)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"-> {build_start(args.params, args.out, args.work)}")
