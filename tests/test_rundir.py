"""vvkit.rundir is the one owner of the run-folder layout: no other module or notebook spells a run-folder file name."""
from __future__ import annotations

import ast
import json
from pathlib import Path

from vvkit import rundir

ROOT = Path(__file__).resolve().parents[1]
NAMES = {rundir.METRICS_FILE, rundir.COMPLETIONS_FILE, rundir.CONFIG_FILE, rundir.SUMMARY_FILE, rundir.WARM_START_FILE,
         "params.yaml", "run.json", "report.md", "judge_cache.sqlite", "figures", "final"}


def literals(source: str) -> set[str]:
    """String constants used as path parts: `folder / "name"` (a dict key of the same text is not a path)."""
    return {n.right.value for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.right, ast.Constant)
            and isinstance(n.right.value, str)}


def test_only_rundir_spells_run_folder_file_names():
    found = {}
    for path in (ROOT / "vvkit").rglob("*.py"):
        if path.name != "rundir.py":
            hits = literals(path.read_text()) & NAMES
            if hits:
                found[str(path.relative_to(ROOT))] = sorted(hits)
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                src = "".join(cell["source"])
                hits = {n for n in NAMES if f'"{n}"' in src or f"'{n}'" in src or f'/ "{n}' in src}
                if hits:
                    found.setdefault(nb.name, []).extend(sorted(hits))
    assert not found, found


def test_stage_dir_names_every_file_of_a_stage(tmp_path):
    stage = rundir.RunDir(tmp_path).stage_dir("grpo")
    assert stage.metrics == tmp_path / "train" / "grpo" / rundir.METRICS_FILE
    assert stage.checkpoint(7).name == "checkpoint-7" and stage.final.name == "final"


def test_the_last_checkpoint_is_the_newest_complete_one(tmp_path):
    stage = rundir.StageDir(tmp_path)
    assert stage.last_checkpoint() is None
    for step in (2, 10):
        stage.checkpoint(step).mkdir()
        (stage.checkpoint(step) / "trainer_state.json").write_text("{}")
    stage.checkpoint(12).mkdir()  # killed in the middle of its save: no trainer_state.json yet
    (stage.checkpoint(12) / "model.safetensors").write_text("partial")
    assert stage.last_checkpoint() == stage.checkpoint(10)  # 10 > 2 numerically, 12 is incomplete
