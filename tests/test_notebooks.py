"""The four notebooks: committed clean, parameters in step with the configs and presets, and the whole study
runs headless through `vvkit run` with the smoke preset (recommenders-style notebook smoke tests)."""
import ast
import dataclasses
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from vvkit.config import SHARED_KEYS, section_config
from vvkit.run import find_notebooks, read_metrics, run_study

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = find_notebooks(ROOT / "notebooks")
PRESETS = sorted((ROOT / "params").glob("*.yaml"))


def _parameters(path: Path) -> set[str]:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def test_the_four_notebooks_exist_in_order():
    assert [(s.number, s.section) for s in NOTEBOOKS] == [
        (1, "data_synthesis"), (2, "reward_design"), (3, "grpo_training"), (4, "analysis")]


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.path.name)
def test_notebook_is_committed_clean_and_runnable_headless(spec):
    nb = nbformat.read(spec.path, as_version=4)
    assert nb.metadata["kernelspec"]["language"] == "python"  # papermill refuses notebooks without it
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{spec.path.name}: strip outputs"


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.path.name)
def test_parameters_cell_matches_config_fields(spec):
    fields = {f.name for f in dataclasses.fields(section_config(spec.section)) if f.init}
    params = _parameters(spec.path)
    assert set(SHARED_KEYS) <= params
    assert params <= fields, f"{spec.path.name}: parameters not in the config: {sorted(params - fields)}"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_key_is_a_notebook_parameter(preset):
    params = yaml.safe_load(preset.read_text())
    for spec in NOTEBOOKS:
        keys = set(params.get(spec.section) or {})
        missing = keys - _parameters(spec.path)
        assert not missing, f"{preset.name}: {spec.section} keys {sorted(missing)} are not parameters of {spec.path.name}"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    run_study(ROOT / "params" / "smoke.yaml", out=out, notebooks_dir=ROOT / "notebooks", progress=False)
    return out


def test_whole_study_runs_headless_with_smoke_params(smoke_run):
    state = json.loads((smoke_run / "run.json").read_text())
    assert [state["notebooks"][s.path.name]["status"] for s in NOTEBOOKS] == ["ok"] * 4
    metrics = read_metrics(smoke_run)
    assert set(metrics) == {s.path.stem for s in NOTEBOOKS}
    data = metrics["01_data_synthesis"]
    assert data["train_rows"] > 0 and data["test_rows"] > 0
    assert data["train_rows"] == sum(data[f"train_{t}"] for t in ("mcq", "open_ended", "caption", "dark_event", "mixvid"))
    assert (smoke_run / "data" / "train.jsonl").exists()
    assert (smoke_run / "report.md").exists()
    assert "headline" in metrics["04_analysis"]
    for spec in NOTEBOOKS:
        executed = nbformat.read(smoke_run / "notebooks" / spec.path.name, as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
