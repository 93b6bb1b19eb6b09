"""The shipped instruct start: the offline study's stand-in for Qwen2.5-VL-7B-Instruct, built once by
`tools/build_start.py` (about 50 minutes of supervised training on 2 CPU cores) and committed with a manifest, the way real
recipes start RL from a released checkpoint (paper §5). The manifest records the recipe (the data's settings and
hash, the supervised schedule, the frame policy, the code versions), the rows it was trained on, its learning curve
and a digest of every file; `shipped_start` refuses a folder whose files do not match their digests, and the test
suite holds the recipe to what `params/instruct_start.yaml` would build."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vvkit.config import stage_config
from vvkit.io import atomic_write_json
from vvkit.prompts import PROMPT_VERSION
from vvkit.rundir import repo_root
from vvkit.synth.build import NOT_HASHED, SYNTH_VERSION, config_dict, config_hash

START_PARAMS = "params/instruct_start.yaml"  # the recipe of the shipped start
START_MANIFEST = "manifest.json"
MAX_START_MB = 20.0  # what a repository should carry
# the files of a policy folder the start ships (not training_args.bin or the trainer's markers)
POLICY_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
                "chat_template.jinja")
START_VERSION = "1"  # bump when the build's logic changes in a way the params do not show


def start_recipe(params: dict) -> dict:
    """Everything that shapes the shipped start, from its params: the data (settings and hash), the supervised
    schedule, the frame policy, the base policy and the code versions. Two equal recipes build the same start."""
    data = stage_config(params, "data_synthesis", run_dir=".")
    sft = stage_config(params, "grpo_training", run_dir=".")
    return {"data": {k: v for k, v in config_dict(data).items() if k not in NOT_HASHED + ("out_dir",)},
            "data_hash": config_hash(data), "frames": sft.frames, "policy": sft.policy or "tiny",
            "steps": sft.instruct_steps, "stage_steps": sft.instruct_stage_steps, "seed": sft.instruct_seed,
            "lr": sft.sft_lr, "batch": sft.sft_batch_size, "answer": sft.sft_answer, "reasoning": sft.sft_reasoning,
            "versions": {"prompt": PROMPT_VERSION, "synth": SYNTH_VERSION, "start": START_VERSION}}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_start(path: str | os.PathLike) -> Path:
    """A start folder: absolute, or relative to the repository (so a notebook kernel in notebooks/ finds it)."""
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def check_start(folder: str | os.PathLike, params: dict | None = None) -> list[str]:
    """What is wrong with a shipped start folder (empty = nothing): a missing manifest or file, a file whose digest
    differs from the manifest's, a folder over MAX_START_MB, and with `params` a recipe other than theirs."""
    folder = resolve_start(folder)
    manifest = folder / START_MANIFEST
    if not manifest.is_file():
        return [f"{manifest}: missing; build the start with `python tools/build_start.py`"]
    m = json.loads(manifest.read_text())
    problems = []
    for name, digest in (m.get("files") or {}).items():
        f = folder / name
        if not f.is_file():
            problems.append(f"{f}: missing (the manifest lists it)")
        elif sha256(f) != digest:
            problems.append(f"{f}: sha256 differs from {manifest}'s; rebuild with `python tools/build_start.py`")
    missing = [n for n in POLICY_FILES if n not in (m.get("files") or {})]
    if missing:
        problems.append(f"{manifest}: lists no digest for {missing}")
    size_mb = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20
    if size_mb > MAX_START_MB:
        problems.append(f"{folder}: {size_mb:.1f} MB, over the {MAX_START_MB:.0f} MB a repository should carry")
    if params is not None:
        want, have = start_recipe(params), m.get("recipe") or {}
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:
            problems.append(f"{manifest}: recipe differs from the params in {diff}; rebuild with "
                            f"`python tools/build_start.py` (or restore the params it was built from)")
    return problems


def read_manifest(folder: str | os.PathLike) -> dict:
    """A start folder's manifest (recipe, rows, learning curve, file digests)."""
    return json.loads((resolve_start(folder) / START_MANIFEST).read_text())


def shipped_start(path: str | os.PathLike) -> Path:
    """The shipped start folder, its files checked against the manifest's digests (a clear error, never a silent
    fall-back to another policy)."""
    folder = resolve_start(path)
    problems = check_start(folder)
    if problems:
        raise FileNotFoundError("grpo_training.instruct_start: " + "; ".join(problems))
    return folder


def write_start(policy: str | os.PathLike, out: str | os.PathLike, manifest: dict) -> Path:
    """Copy a trained policy's files into `out` with the manifest (`manifest['files']` = their digests), replacing
    `out` atomically: a killed build never leaves a half-written start behind."""
    out, policy = Path(out), Path(policy)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for name in POLICY_FILES:
            shutil.copyfile(policy / name, tmp / name)
        atomic_write_json(tmp / START_MANIFEST, {**manifest, "files": {n: sha256(tmp / n) for n in POLICY_FILES}})
        for f in tmp.iterdir():
            os.chmod(f, 0o644)  # ordinary committed files, not the temp files' private mode
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["START_PARAMS", "START_MANIFEST", "POLICY_FILES", "check_start", "read_manifest", "resolve_start",
           "shipped_start", "start_recipe", "write_start"]
