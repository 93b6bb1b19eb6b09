"""The four notebooks: committed clean, parameters in step with the configs and presets, and the whole study
runs headless through `vvkit run` with the smoke preset (recommenders-style notebook smoke tests)."""
import ast
import json
from pathlib import Path

import nbformat
import pytest

from vvkit.rundir import read_metrics
from vvkit.run import find_notebooks, run_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = find_notebooks(ROOT / "notebooks")
WRITERS = [s for s in NOTEBOOKS if s.section != "analysis"]  # 04 reads a finished run; 01-03 write one
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


def _parameters_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.path.name)
def test_parameters_cell_is_short_and_names_only_the_params_file_run_folder_and_knobs(spec):
    source = _parameters_cell(spec.path)
    assert len(source.splitlines()) <= 12, f"{spec.path.name}: the parameters cell should stay a handful of lines"
    assert _parameters(spec.path) == {"params_file", "run_dir", "overrides"}
    nb = nbformat.read(spec.path, as_version=4)
    call = f'notebook_config("{spec.section}", params_file, run_dir, overrides)'
    assert any(call in c.source for c in nb.cells if c.cell_type == "code"), f"{spec.path.name}: no {call}"


@pytest.mark.parametrize("spec", WRITERS, ids=lambda s: s.path.name)
def test_interactive_defaults_are_the_default_preset(spec, tmp_path, monkeypatch):
    """Run interactively with its defaults, every notebook sees params/default.yaml's frame policy, reward settings
    and section values: one home for every default."""
    from vvkit.config import read_params, stage_config
    from vvkit.run import notebook_config

    monkeypatch.chdir(ROOT / "notebooks")  # a kernel started beside the notebook
    env: dict = {}
    exec(_parameters_cell(spec.path), env)
    got = notebook_config(spec.section, env["params_file"], env["run_dir"], env["overrides"])
    want = stage_config(read_params(ROOT / "params" / "default.yaml"), spec.section, run_dir=got.run_dir)
    assert Path(got.run_dir) == ROOT / "runs" / "interactive"  # resolved against the repository root
    assert got.frames == want.frames == read_params(ROOT / "params" / "default.yaml")["frames"]
    assert getattr(got, "rewards", None) == getattr(want, "rewards", None)
    for key in read_params(ROOT / "params" / "default.yaml").get(spec.section) or {}:
        assert getattr(got, key) == getattr(want, key), key


def test_analysis_opens_the_newest_run_folder_by_default(tmp_path, monkeypatch):
    """Notebook 04 opened on a checkout where only `make demo` has run reads that run; with no run at all, the error
    says how to make one."""
    import os
    import shutil

    from vvkit.rundir import RunDir
    from vvkit.run import notebook_config

    checkout = tmp_path / "checkout"
    (checkout / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "params", checkout / "params")
    monkeypatch.chdir(checkout / "notebooks")  # a kernel started beside the notebook
    spec = next(s for s in NOTEBOOKS if s.section == "analysis")
    env: dict = {}
    exec(_parameters_cell(spec.path), env)
    with pytest.raises(FileNotFoundError, match="make demo"):
        notebook_config(spec.section, env["params_file"], env["run_dir"], env["overrides"])
    (checkout / "runs" / "notes").mkdir(parents=True)  # not a run folder
    for name, tokens, when in (("default__seed0__20240101-000000", 5, 2_000_000_000),
                               ("smoke__seed0__20230101-000000", 3, 1_000_000_000)):
        run = RunDir(checkout / "runs" / name)
        run.root.mkdir()
        run.params.write_text(f"analysis: {{max_new_tokens: {tokens}}}\n")
        for path in (run.params, run.root):
            os.utime(path, (when, when))
    cfg = notebook_config(spec.section, env["params_file"], env["run_dir"], env["overrides"])
    assert Path(cfg.run_dir) == checkout / "runs" / "default__seed0__20240101-000000" and cfg.max_new_tokens == 5


def test_a_mistyped_notebook_knob_is_an_error_naming_it():
    from vvkit.config import ConfigError
    from vvkit.run import notebook_config

    with pytest.raises(ConfigError, match="max_stepz"):
        notebook_config("grpo_training", overrides={"max_stepz": 3})
    with pytest.raises(ConfigError, match="judge_modle"):
        notebook_config("analysis", overrides={"rewards": {"judge_modle": "x"}})


def test_a_finished_run_opens_with_its_own_settings(tmp_path):
    from vvkit.rundir import RunDir
    from vvkit.run import notebook_config

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.params.write_text("frames: {nframes: 2}\nanalysis: {max_new_tokens: 7}\n")
    cfg = notebook_config("analysis", None, run.root)
    assert cfg.frames == {"nframes": 2} and cfg.max_new_tokens == 7


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    run_notebooks(ROOT / "params" / "smoke.yaml", out=out, notebooks_dir=ROOT / "notebooks", progress=False)
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
