"""The runner: numbered notebooks, shared parameters, run folder, clear failures, resume."""
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from vvkit.config import ConfigError, load_params
from vvkit.rundir import read_metrics
from vvkit.run import NotebookFailed, find_notebooks, run_notebooks, run_summary


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "vvkit", "display_name": "vvkit (.venv)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell('params_file = None\nrun_dir = "runs/x"\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


@pytest.fixture
def study(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_first.ipynb", "from vvkit.config import read_params\nfrom vvkit.rundir import record_metrics\n"
              "p = read_params(params_file)\n"
              "record_metrics(run_dir, '01_first', {'seed': p['run']['seed'], 'fps': p['frames'].get('fps')})")
    _notebook(nbs / "02_second.ipynb", "import json, pathlib\n"
              "m = json.loads((pathlib.Path(run_dir) / 'metrics' / '01_first.json').read_text())\n"
              "from vvkit.rundir import record_metrics\nrecord_metrics(run_dir, '02_second', {'got': m['seed'] + 1})")
    (nbs / "notes.ipynb").write_text("{}")  # not numbered: ignored
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"run": {"name": "t", "seed": 7}, "frames": {"fps": 1.0}}))
    return tmp_path, nbs, params


def test_find_notebooks_orders_numbered_only(study):
    _, nbs, _ = study
    specs = find_notebooks(nbs)
    assert [(s.number, s.section) for s in specs] == [(1, "first"), (2, "second")]


def test_run_executes_notebooks_in_order_into_run_folder(study):
    tmp, nbs, params = study
    out = tmp / "runs" / "r1"
    run_dir = run_notebooks(params, out=out, notebooks_dir=nbs, progress=False)
    assert run_dir == out
    metrics = read_metrics(out)
    assert metrics["01_first"] == {"seed": 7, "fps": 1.0}
    assert metrics["02_second"] == {"got": 8}
    state = json.loads((out / "run.json").read_text())
    assert state["seed"] == 7 and state["code_version"]
    assert {v["status"] for v in state["notebooks"].values()} == {"ok"}
    assert (out / "notebooks" / "01_first.ipynb").exists()
    assert yaml.safe_load((out / "params.yaml").read_text())["run"]["seed"] == 7
    assert "02_second" in run_summary(out)


def test_failing_notebook_names_itself_and_keeps_partial_copy(study):
    tmp, nbs, params = study
    _notebook(nbs / "03_broken.ipynb", "raise ValueError('boom')")
    out = tmp / "runs" / "r2"
    with pytest.raises(NotebookFailed, match=r"03_broken.ipynb failed in cell .*ValueError: boom"):
        run_notebooks(params, out=out, notebooks_dir=nbs, progress=False)
    assert (out / "notebooks" / "03_broken.ipynb").exists()
    state = json.loads((out / "run.json").read_text())
    assert state["notebooks"]["03_broken.ipynb"]["status"] == "failed"
    # resume: the finished notebooks are skipped, the broken one runs again after a fix
    _notebook(nbs / "03_broken.ipynb", "x = 1")
    (out / "metrics" / "01_first.json").unlink()
    run_notebooks(params, out=out, notebooks_dir=nbs, resume=True, progress=False)
    assert not (out / "metrics" / "01_first.json").exists()  # skipped, not redone
    assert json.loads((out / "run.json").read_text())["notebooks"]["03_broken.ipynb"]["status"] == "ok"


def test_params_errors_name_section_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"run": {"seed": 0, "sede": 1}}))
    with pytest.raises(ConfigError, match="sede"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"frames": {"fsp": 2}}))
    with pytest.raises(ConfigError, match="frames"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"no_such_notebook": {"a": 1}}))
    with pytest.raises(ConfigError, match="no_such_notebook"):
        load_params(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_training_progress_lines_are_what_vvkit_run_streams(capsys):
    from types import SimpleNamespace

    from vvkit.callbacks import ProgressLines

    cb = ProgressLines("grpo", lines=2)
    state = SimpleNamespace(global_step=0, max_steps=4, is_world_process_zero=True)
    cb.on_train_begin(None, state, None)
    for step in (1, 2, 3, 4):
        state.global_step = step
        cb.on_log(None, state, None, logs={"reward": 0.25 * step, "format_rate": 1.0})
    cb.on_log(None, state, None, logs={"train_runtime": 3.0})  # the summary record prints nothing
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["[vvkit] grpo step 2/4", "[vvkit] grpo step 4/4"]
    assert "reward 1.000" in lines[-1] and "ETA 0.0 min" in lines[-1]


def test_a_resumed_training_notebook_continues_from_its_last_checkpoint(study):
    """`vvkit run --resume` re-executing notebook 03 after an interruption passes resume_from_checkpoint='last' (its
    TrainConfig resumes from the newest checkpoint-N); a first run, or one whose params changed, starts afresh."""
    from vvkit.run import notebook_config

    tmp, nbs, params = study
    _notebook(nbs / "03_grpo_training.ipynb", "import pathlib\nfrom vvkit.rundir import record_metrics\n"
              "record_metrics(run_dir, '03_grpo_training', {'overrides': overrides})\n"
              "assert (pathlib.Path(run_dir) / 'go').exists(), 'killed'")
    out = tmp / "runs" / "r3"
    with pytest.raises(NotebookFailed):
        run_notebooks(params, out=out, notebooks_dir=nbs, progress=False)
    assert read_metrics(out)["03_grpo_training"]["overrides"] == {}
    (out / "go").touch()
    run_notebooks(params, out=out, notebooks_dir=nbs, resume=True, progress=False)
    assert read_metrics(out)["03_grpo_training"]["overrides"] == {"resume_from_checkpoint": "last"}
    cfg = notebook_config("grpo_training", out / "params.yaml", out, {"resume_from_checkpoint": "last"})
    assert cfg.resume_from_checkpoint == "last"
    # the run's params edited before resuming: the old checkpoints belong to other settings, training starts afresh
    state = json.loads((out / "run.json").read_text())
    state["notebooks"]["03_grpo_training.ipynb"]["status"] = "running"  # as a killed run leaves it
    (out / "run.json").write_text(json.dumps(state))
    edited = yaml.safe_load((out / "params.yaml").read_text())
    edited["run"]["seed"] = 8
    (out / "params.yaml").write_text(yaml.safe_dump(edited))
    run_notebooks(out / "params.yaml", out=out, notebooks_dir=nbs, resume=True, progress=False)
    assert read_metrics(out)["03_grpo_training"]["overrides"] == {}


def _policy(folder: Path, weights: bytes = b"w" * 10) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_a_copied_or_moved_run_folder_is_analysed_again_from_its_results(tmp_path):
    """Evaluation results are resumed when the policy is the same: the same place inside the run folder (copied or
    moved with it), or the same content outside it; another policy is still refused."""
    import shutil

    import numpy as np

    from vvkit.config import EvalConfig
    from vvkit.evaluate import evaluate
    from vvkit.schema import Row
    from vvkit.video import write_video

    def say(model, processor, batch, cfg):
        return ["<think>x</think><answer>A</answer>"] * len(batch)

    def boom(*a):
        raise AssertionError("generated again")

    clip = write_video(np.zeros((4, 56, 56, 3), np.uint8), tmp_path / "v.mp4", fps=4)
    rows = [Row(f"m{i}", str(clip), "Which?", "A", "mcq", ["A. red", "B. blue"]) for i in range(3)]
    cfg = EvalConfig(frames={"nframes": 2, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}, batch_size=2,
                     max_new_tokens=8, progress=False)
    run = tmp_path / "runs" / "a"
    (run / "params.yaml").parent.mkdir(parents=True)
    (run / "params.yaml").write_text("run: {seed: 0}\n")
    base = _policy(tmp_path / "models" / "base")
    _policy(run / "train" / "grpo" / "final", weights=b"g" * 11)
    evaluate(run / "train" / "grpo" / "final", rows, cfg, run / "eval" / "grpo" / "video", generate_fn=say, judge=None)
    evaluate(base, rows, cfg, run / "eval" / "base" / "video", generate_fn=say, judge=None)

    copy = tmp_path / "runs" / "copy"
    shutil.copytree(run, copy)
    moved = tmp_path / "elsewhere" / "a"
    shutil.move(run, moved)
    shutil.copytree(base, tmp_path / "models" / "base2")  # the same weights under another name
    for folder in (copy, moved):
        res = evaluate(folder / "train" / "grpo" / "final", rows, cfg, folder / "eval" / "grpo" / "video",
                       generate_fn=boom, judge=None)
        assert res.metrics["mcq"]["accuracy"] == 1.0
    evaluate(tmp_path / "models" / "base2", rows, cfg, moved / "eval" / "base" / "video", generate_fn=boom, judge=None)
    other = _policy(tmp_path / "models" / "other", weights=b"v" * 12)
    for folder, out in ((other, "grpo"), (other, "base"), (moved / "train" / "grpo" / "final", "base")):
        with pytest.raises(RuntimeError, match="other settings"):
            evaluate(folder, rows, cfg, moved / "eval" / out / "video", generate_fn=boom, judge=None)
