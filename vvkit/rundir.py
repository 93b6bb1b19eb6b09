"""The run folder's layout: `RunDir` is the one owner of every path and file name in a run folder, figures included
(cleanrl's one-folder-per-run, nanoGPT's config-in-checkpoint). Nothing else in the library or the notebooks writes a
literal run-folder path; `latest_run` finds the newest run to open."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vvkit.io import atomic_write_json


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The checkout a notebook runs from: the first folder at or above `start` (default the working folder) that
    holds `params/` and `notebooks/`. Relative run folders resolve against it, so a kernel started in notebooks/
    writes to the same runs/ as the command line."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


# File names inside a training stage's folder (`train/<stage>/`, or any GRPO `output_dir`).
METRICS_FILE, COMPLETIONS_FILE, CONFIG_FILE = "metrics.jsonl", "completions.jsonl", "train_config.json"
SUMMARY_FILE, WARM_START_FILE = "summary.json", "warm_start.json"
FINAL_NAMES = ("final", "policy")  # a stage's trained policy folder: GRPO's `final/`, the warm start's `policy/`


@dataclass(frozen=True)
class StageDir:
    """One training stage's folder: its logs, checkpoints, summary and final policy."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    metrics = property(lambda self: self.root / METRICS_FILE)
    completions = property(lambda self: self.root / COMPLETIONS_FILE)
    config = property(lambda self: self.root / CONFIG_FILE)
    summary = property(lambda self: self.root / SUMMARY_FILE)
    final = property(lambda self: self.root / "final")

    def checkpoint(self, step: int) -> Path:
        return self.root / f"checkpoint-{step}"

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint: one holding `trainer_state.json`, which the Trainer writes last, so a
        run killed in the middle of a save resumes from the checkpoint before it."""
        done = [p for p in self.root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                and (p / "trainer_state.json").is_file()]
        return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


@dataclass(frozen=True)
class RunDir:
    """The one owner of the run-folder layout: every path and figure name the library and the notebooks use.

        params.yaml  run.json  report.md  notebooks/  metrics/<notebook>.json  figures/<name>.png
        data/{train,test}.jsonl, videos/     policy/tiny/     rewards/ (judge cache, playground tables)
        train/warm_start/{policy/, metrics.jsonl}  train/<stage>/{final/, metrics.jsonl, completions.jsonl}
        eval/<policy>/<condition>/{results.json, predictions.jsonl}  eval/<policy>/benchmarks/<name>/
        eval/<policy>/lmms_eval/<tasks>/ (lmms-eval's results)     lmms_tasks/ (the test sets as lmms-eval tasks)
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        root = Path(root)
        object.__setattr__(self, "root", root if root.is_absolute() else repo_root() / root)

    def __fspath__(self) -> str:
        return str(self.root)

    # ---- the run itself ----
    params = property(lambda self: self.root / "params.yaml")
    state = property(lambda self: self.root / "run.json")
    report = property(lambda self: self.root / "report.md")
    notebooks = property(lambda self: self.root / "notebooks")
    figures = property(lambda self: self.root / "figures")

    def figure(self, name: str) -> Path:
        """`figures/<name>.png` (names start with the notebook number, e.g. 03_curves)."""
        return self.figures / f"{name}.png"

    def metrics(self, notebook: str) -> Path:
        return self.root / "metrics" / f"{notebook}.json"

    # ---- stages ----
    def data(self, out_dir: str = "data") -> Path:
        return self.root / out_dir

    def rows(self, split: str, out_dir: str = "data") -> Path:
        return self.data(out_dir) / f"{split}.jsonl"

    tiny_policy = property(lambda self: self.root / "policy" / "tiny")
    rewards = property(lambda self: self.root / "rewards")
    judge_cache = property(lambda self: self.root / "rewards" / "judge_cache.sqlite")

    def judge_cache_of(self, rank: int) -> Path:
        """The judge cache of one process: rank 0 keeps `judge_cache`, other ranks their own file."""
        return self.judge_cache if rank == 0 else self.rewards / f"judge_cache.rank{rank}.sqlite"

    def stage(self, name: str) -> Path:
        """`train/<name>`: a training stage's logs and checkpoints (warm_start, grpo, or a comparison arm)."""
        return self.root / "train" / name

    def stage_dir(self, name: str) -> StageDir:
        """`train/<name>` as a StageDir (its logs, checkpoints, summary and final policy)."""
        return StageDir(self.stage(name))

    def stages(self) -> list[Path]:
        folder = self.root / "train"
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def final(self, stage: str) -> Path:
        """Where a stage's trained policy is saved (`load_policy` reads it); the warm start's is `policy/`."""
        return self.stage(stage) / ("policy" if stage == "warm_start" else "final")

    def eval(self, policy: str, condition: str | None = None) -> Path:
        return self.root / "eval" / policy / (condition or "")

    def benchmark(self, policy: str, name: str) -> Path:
        return self.root / "eval" / policy / "benchmarks" / name

    def lmms_eval(self, policy: str, tasks: str | None = None) -> Path:
        """`eval/<policy>/lmms_eval/<tasks>/`: one lmms-eval run of a policy (`vvkit lmms-eval`; `tasks` as given, e.g.
        "vvkit" or "videomme+vvkit_mcq"), beside the kit's own evaluation; a rerun of the same tasks replaces it."""
        return self.root / "eval" / policy / "lmms_eval" / (tasks or "")

    lmms_tasks = property(lambda self: self.root / "lmms_tasks")  # the run's test sets as lmms-eval tasks

    def policy(self, name: str, base: str | None = None) -> Path:
        """A named policy of the run: 'base' = `base` or the tiny policy; 'start' = the policy GRPO started from (as
        its summary.json records: instruct, warm start or base); 'warm_start' = the warm start (the base when the
        run had none); a stage name = its final policy; anything else, a folder."""
        if name == "base":
            path = Path(base) if base else self.tiny_policy
        elif name == "start":
            summary = self.stage("grpo") / "summary.json"
            if not summary.is_file():
                raise FileNotFoundError(f"policy 'start': {summary} is missing; run GRPO (notebook 03) first")
            path = Path(json.loads(summary.read_text())["start_policy"])
        elif name == "warm_start":
            path = self.final("warm_start")
            cfg_file = self.stage("grpo") / "train_config.json"
            if not path.is_dir() and cfg_file.is_file() and not json.loads(cfg_file.read_text()).get("sft_steps"):
                start = self.policy("base", json.loads(cfg_file.read_text()).get("policy") or base)
                print(f"[vvkit] warm_start: this run had no SFT warm start; GRPO started from {start}")
                return start
        elif self.stage(name).is_dir():
            path = self.final(name)
        else:
            path = Path(name)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"policy {name!r}: no saved policy at {path} (no config.json). 'base' is built by "
                                    f"notebook 03, 'warm_start' and 'grpo' by notebook 03 (vvkit.train.train); or "
                                    f"give a policy folder.")
        return path


def is_interactive() -> bool:
    """True in a live Jupyter session, False under papermill / `vvkit run` / plain Python (widgets are skipped)."""
    if os.environ.get("VVKIT_HEADLESS") == "1":
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def record_metrics(run_dir: str | os.PathLike, name: str, metrics: dict[str, Any]) -> Path:
    """Write a notebook's headline numbers to `<run_dir>/metrics/<name>.json` (tests and the report read them)."""
    return atomic_write_json(RunDir(run_dir).metrics(name), metrics)


def read_metrics(run_dir: str | os.PathLike) -> dict[str, dict]:
    """All metrics files of a run, by notebook name."""
    d = RunDir(run_dir).metrics("x").parent
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))} if d.exists() else {}




def run_folders(runs: str | os.PathLike | None = None) -> list[Path]:
    """The run folders under `runs` (default `<repository>/runs`), oldest first: folders holding a params.yaml or
    run.json (`vvkit run`) or the data/ or train/ of an interactive session."""
    runs = Path(runs) if runs is not None else repo_root() / "runs"
    if not runs.is_dir():
        return []

    def touched(folder: Path) -> float:
        marks = (folder, folder / "params.yaml", folder / "run.json")
        return max(p.stat().st_mtime for p in marks if p.exists())

    found = [p for p in runs.iterdir() if p.is_dir() and any((p / m).exists()
                                                             for m in ("params.yaml", "run.json", "data", "train"))]
    return sorted(found, key=lambda p: (touched(p), p.name))


def latest_run(runs: str | os.PathLike | None = None) -> Path:
    """The newest run folder under `runs` (what notebook 04 opens by default: after `make demo`, the demo's run)."""
    found = run_folders(runs)
    if not found:
        where = Path(runs) if runs is not None else repo_root() / "runs"
        raise FileNotFoundError(f"no run folder under {where}: run the study first (`make demo` or `vvkit run`), or "
                                f"set run_dir to a finished run folder")
    return found[-1]
