"""A vvkit policy through lmms-eval (EvolvingLMMs-Lab/lmms-eval 0.7.3), the harness most video-LLM results are
reported with: the kit's `FramePolicy` mapped onto the model arguments of lmms-eval's `qwen2_5_vl` model, one offline
run in the lmms-eval environment (`.venv-lmms`, `make lmms-env`; docs/lmms_eval.md says why it is a second one), and
the results filed in the run folder beside the kit's own evaluation (`RunDir.lmms_eval`).

lmms-eval exits 0 when an evaluation failed, so a run that leaves no results file is an error here, with the tail of
its log. A saved policy folder is evaluated as it is: lmms-eval has no LoRA option, and the kit's saver merges
adapters (`vvkit.model.save_policy`); an adapter-only folder is refused with the merge to run.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vvkit.config import ConfigError, read_params, stage_config
from vvkit.io import atomic_write_json
from vvkit.lmms_tasks import export_run_tasks
from vvkit.rundir import RunDir, repo_root
from vvkit.video import IMAGE_FACTOR, FramePolicy

LMMS_VENV = ".venv-lmms"
PYTHON_ENV = "VVKIT_LMMS_PYTHON"  # the interpreter that has lmms-eval, when it is not <repo>/.venv-lmms
MODEL = "qwen2_5_vl"              # lmms-eval's Qwen2.5-VL model (its chat variant: video first, then the text)
# qwen-vl-utils 0.0.14 (lmms-eval's): the clip's pixel budget is MODEL_SEQ_LEN * 28 * 28 * 0.9, from the environment.
SEQ_PIXELS = IMAGE_FACTOR * IMAGE_FACTOR * 0.9
# ... and with an fps it clamps the frame count to [4, 768]; lmms-eval's model passes no min_frames / max_frames.
QWEN_FPS_FRAMES = (4, 768)
MAPPING_FILE = "mapping.json"
SUMMARY_FILE = "summary.json"
LOG_FILE = "lmms_eval.log"


class LmmsEvalError(RuntimeError):
    """lmms-eval could not run, or ran and wrote no results."""


# ---- the frame policy as lmms-eval model arguments ---------------------------------------------------------------

@dataclass
class FrameMapping:
    """The kit's frame policy as lmms-eval's `qwen2_5_vl` model arguments and qwen-vl-utils' environment settings,
    with a note for every field that lmms-eval samples differently (recorded beside every run)."""

    frames: dict
    model_args: dict[str, Any]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)


def map_frames(policy: FramePolicy) -> FrameMapping:
    """Map a FramePolicy onto lmms-eval 0.7.3's `qwen2_5_vl` (chat) model, which hands each video to qwen-vl-utils
    0.0.14 with `nframes` (from `max_num_frames`) or `fps`, and `min_pixels` / `max_pixels` per frame."""
    args: dict[str, Any] = {"min_pixels": policy.min_pixels, "max_pixels": policy.max_pixels}
    notes = []
    if policy.nframes is not None:
        args["max_num_frames"] = round(policy.nframes / 2) * 2
        notes.append("nframes -> max_num_frames: lmms-eval takes min(max_num_frames, frames in the file), floored to "
                     "even; the kit refuses a clip shorter than nframes instead of sampling fewer frames")
    else:
        args["fps"] = policy.fps
        if (policy.min_frames, policy.max_frames) != QWEN_FPS_FRAMES:
            notes.append(f"min_frames={policy.min_frames}, max_frames={policy.max_frames} are not passed: lmms-eval's "
                         f"model takes neither, and qwen-vl-utils clamps to {list(QWEN_FPS_FRAMES)}")
    seq = policy.total_pixels / SEQ_PIXELS
    env = {"MODEL_SEQ_LEN": str(int(seq)), "FORCE_QWENVL_VIDEO_READER": "decord"}
    if abs(seq - round(seq)) > 1e-6:
        notes.append(f"total_pixels={policy.total_pixels} -> MODEL_SEQ_LEN={int(seq)}: qwen-vl-utils' budget is "
                     f"MODEL_SEQ_LEN*28*28*0.9 = {int(seq) * SEQ_PIXELS:.0f} pixels")
    if policy.backend != "decord":
        notes.append(f"backend={policy.backend}: qwen-vl-utils has no PyAV reader; decord reads the file (the same "
                     f"frame positions: linspace over the file's frames, rounded)")
    notes.append("frames are resized by torchvision (bicubic, antialiased) instead of the kit's decoder: the same "
                 "sizes, pixel values differ slightly")
    return FrameMapping(policy.to_dict(), args, env, notes)


def model_args_string(pretrained: str | os.PathLike, mapping: FrameMapping, device_map: str = "cpu") -> str:
    """`--model_args` for lmms-eval: the policy folder, the device map (without one it sends inputs to CUDA whatever
    `--device` says) and the mapped frame arguments."""
    args = {"pretrained": str(pretrained), "device_map": device_map, **mapping.model_args}
    return ",".join(f"{k}={v}" for k, v in args.items())


# ---- one lmms-eval run ----------------------------------------------------------------------------------------------

def lmms_python(python: str | os.PathLike | None = None) -> str:
    """The interpreter that runs lmms-eval: `python`, else $VVKIT_LMMS_PYTHON, else <repo>/.venv-lmms/bin/python,
    else this one when it imports lmms_eval."""
    given = python or os.environ.get(PYTHON_ENV)
    if given:
        if not Path(given).is_file():
            raise LmmsEvalError(f"{given}: no such interpreter (from --python or ${PYTHON_ENV})")
        return str(given)
    venv = repo_root(Path(__file__).parent) / LMMS_VENV / "bin" / "python"
    if venv.is_file():
        return str(venv)
    if importlib.util.find_spec("lmms_eval") is not None:
        return sys.executable
    raise LmmsEvalError(f"lmms-eval is not installed: run `make lmms-env` (builds {LMMS_VENV}), or pass --python / "
                        f"set ${PYTHON_ENV} to an interpreter that has lmms-eval 0.7.3")


@dataclass
class LmmsRun:
    """One lmms-eval invocation: which policy on which tasks, where it writes, and how frames and decoding are set."""

    policy: Path
    tasks: list[str]
    out: Path
    frames: FramePolicy
    max_new_tokens: int = 2048
    include_path: Path | None = None
    limit: int | None = None
    data_root: Path | None = None   # lmms-eval's working folder: stock tasks' relative dataset_path resolve in it
    hf_home: Path | None = None     # where stock video tasks find their videos ($HF_HOME/<cache_dir>)
    device: str = "cpu"             # the model's device map and lmms-eval's --device, e.g. cuda:0
    python: str | None = None

    def command(self) -> list[str]:
        cmd = [lmms_python(self.python), "-m", "vvkit.lmms_entry", "--model", MODEL,  # lmms_eval + vvkit.model
               "--model_args", model_args_string(self.policy, map_frames(self.frames), self.device),
               "--tasks", ",".join(self.tasks), "--batch_size", "1", "--device", self.device,
               "--gen_kwargs", f"max_new_tokens={int(self.max_new_tokens)}",
               "--output_path", str(self.out), "--log_samples"]
        if self.include_path is not None:
            cmd += ["--include_path", str(self.include_path)]
        if self.limit is not None:
            cmd += ["--limit", str(int(self.limit))]
        return cmd

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               **map_frames(self.frames).env}
        if self.hf_home is not None:
            env["HF_HOME"] = str(Path(self.hf_home).resolve())
        return env


def check_policy_folder(path: Path) -> Path:
    """A folder lmms-eval can load: weights with their config (an adapter alone must be merged first)."""
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        raise LmmsEvalError(f"{path}: a LoRA adapter without merged weights; lmms-eval has no LoRA option. Merge it "
                            f"first: vvkit.model.merge_adapter(<base policy>, '{path}', <out folder>)")
    if not (path / "config.json").is_file():
        raise LmmsEvalError(f"{path}: no config.json; pass a saved policy folder (weights, tokenizer, processor)")
    return path


def find_results(out: Path, since: float = 0.0) -> Path:
    """The newest `*_results.json` lmms-eval wrote under `out` after `since`; LmmsEvalError when there is none."""
    found = [p for p in Path(out).glob("**/*_results.json") if p.stat().st_mtime >= since]
    if not found:
        raise LmmsEvalError(f"lmms-eval wrote no results file under {out} (it exits 0 when an evaluation fails); "
                            f"see {Path(out) / LOG_FILE}")
    return max(found, key=lambda p: p.stat().st_mtime)


def read_results(path: str | os.PathLike, tasks: list[str] | None = None) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} from an lmms-eval results file (its `metric,filter` keys become `metric`, and
    `metric_stderr,filter` `metric_stderr`); with `tasks`, each of them (a group: each of its tasks) must be there."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data.get("results"), dict) or not data["results"]:
        raise LmmsEvalError(f"{path}: no 'results' in this lmms-eval results file")
    groups = data.get("group_subtasks") or {}
    wanted = [sub for t in tasks or [] for sub in (groups.get(t) or [t])]
    missing = [t for t in wanted if t not in data["results"]]
    if missing:
        raise LmmsEvalError(f"{path}: no results for {missing} (lmms-eval skipped them); see the log beside it")
    return {task: {k.split(",")[0]: v for k, v in metrics.items() if "," in k}
            for task, metrics in data["results"].items()}


def _tail(path: Path, n: int = 40) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join(lines[-n:])


def run_lmms_eval(spec: LmmsRun, timeout_s: float | None = None) -> dict:
    """Run lmms-eval once into `spec.out` (its log in lmms_eval.log, the mapping in mapping.json) and return the
    summary it leaves in summary.json: the results file, the metrics read back, the mapping and the command."""
    check_policy_folder(spec.policy)
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*/*_results.json"), *out.glob("*/*_samples_*.jsonl"), out / SUMMARY_FILE]:
        old.unlink(missing_ok=True)  # a rerun replaces the last one
    mapping = map_frames(spec.frames)
    cmd = spec.command()
    record = {"out": str(out), "command": cmd, "max_new_tokens": spec.max_new_tokens, "tasks": spec.tasks,
              "policy": str(spec.policy), "include_path": str(spec.include_path) if spec.include_path else None,
              "mapping": asdict(mapping)}
    atomic_write_json(out / MAPPING_FILE, record)
    started = time.time()
    with open(out / LOG_FILE, "w") as log:  # lmms-eval exits 0 on failure: the results file decides, not the status
        proc = subprocess.run(cmd, cwd=spec.data_root or out, env=spec.environment(), stdout=log,
                              stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    try:
        results = find_results(out, started)
    except LmmsEvalError as e:
        raise LmmsEvalError(f"{e}; exit status {proc.returncode}; log tail:\n{_tail(out / LOG_FILE)}") from None
    summary = {"results_file": str(results.relative_to(out)), "results": read_results(results, spec.tasks),
               "exit_status": proc.returncode, "seconds": round(time.time() - started, 1), **record}
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def run_spec(run_dir: str | os.PathLike | None, policy: str, tasks: list[str], *, out: str | os.PathLike | None = None,
             **kw: Any) -> LmmsRun:
    """An LmmsRun for a run's policy (its name, e.g. 'grpo', or a folder), with the run's frame policy and completion
    length (`frames`, `analysis.max_new_tokens`), filed under `RunDir.lmms_eval(<policy>)`; without a run, the
    default frame policy and `out`."""
    if run_dir is None:
        if out is None:
            raise ConfigError("lmms-eval: give a run folder (results go under eval/<policy>/lmms_eval/) or --out")
        frames = FramePolicy.from_dict(kw.pop("frames", None) or {})
        return LmmsRun(policy=Path(policy), tasks=tasks, out=Path(out), frames=frames, **kw)
    run = RunDir(run_dir)
    cfg = stage_config(read_params(run.params), "analysis", run_dir=run.root, where=str(run.params))
    folder = run.policy(policy)
    name = policy if folder != Path(policy) else folder.name
    kw.setdefault("max_new_tokens", cfg.max_new_tokens)
    frames = FramePolicy.from_dict(kw.pop("frames", None) or cfg.frames)
    out = Path(out) if out else run.lmms_eval(name, "+".join(tasks))
    return LmmsRun(policy=folder, tasks=tasks, out=out, frames=frames, **kw)


def evaluate_policy(run_dir: str | os.PathLike | None, policy: str, tasks: list[str], *,
                    include_path: str | os.PathLike | None = None, **kw: Any) -> dict:
    """`vvkit lmms-eval`: run lmms-eval on `tasks` for a run's policy (or a policy folder with `out`). Tasks named
    `vvkit` or `vvkit_<task>` are the run's held-out rows, exported first to `RunDir.lmms_tasks` when no
    `include_path` is given."""
    if run_dir is not None and include_path is None and any(t == "vvkit" or t.startswith("vvkit_") for t in tasks):
        export_run_tasks(run_dir)
        include_path = RunDir(run_dir).lmms_tasks
    spec = run_spec(run_dir, policy, tasks, include_path=Path(include_path) if include_path else None, **kw)
    return run_lmms_eval(spec)


def main(args: Any) -> int:
    """`vvkit lmms-eval` (arguments from `vvkit.cli`): run, then print the metrics read back and where they are."""
    kw = {k: getattr(args, k) for k in ("limit", "data_root", "hf_home", "python", "max_new_tokens", "out", "device")
          if getattr(args, k, None) is not None}
    try:
        summary = evaluate_policy(args.run, args.policy, [t for t in args.tasks.split(",") if t],
                                  include_path=args.include_path, **kw)
    except LmmsEvalError as e:
        print(f"vvkit: error: {e}", file=sys.stderr)
        return 2
    for task, metrics in summary["results"].items():
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()
                          if "stderr" not in k and isinstance(v, (int, float)))
        print(f"{task}: {shown}")
    print(f"results read back into {Path(summary['out']) / SUMMARY_FILE}")
    return 0
