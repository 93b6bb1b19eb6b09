"""`vvkit` on the command line as a user drives it: resuming a run folder with the README's command, re-running one
notebook of an existing folder, stopping a run, checking a params file."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_run import _notebook
from vvkit.cli import main

VVKIT = Path(sys.executable).parent / "vvkit"


@pytest.fixture
def interrupted_run(tmp_path):
    """A run folder made with a non-default params file whose second notebook failed (as a killed run leaves it)."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_first.ipynb", "from vvkit.config import read_params\nfrom vvkit.rundir import record_metrics\n"
              "record_metrics(run_dir, '01_first', {'seed': read_params(params_file)['run']['seed']})")
    _notebook(nbs / "02_second.ipynb", "import pathlib\nfrom vvkit.config import read_params\n"
              "from vvkit.rundir import record_metrics\n"
              "record_metrics(run_dir, '02_second', {'seed': read_params(params_file)['run']['seed']})\n"
              "assert (pathlib.Path(run_dir) / 'go').exists(), 'stopped'")
    params = tmp_path / "mine.yaml"
    params.write_text(yaml.safe_dump({"run": {"name": "mine", "seed": 7}, "frames": {"fps": 1.0}}))
    out = tmp_path / "runs" / "r"
    assert main(["run", "--params", str(params), "--out", str(out), "--notebooks", str(nbs)]) == 2
    assert json.loads((out / "run.json").read_text())["notebooks"]["02_second.ipynb"]["status"] == "failed"
    return out, nbs, params


def test_resume_without_params_reads_the_run_folders_own_params(interrupted_run):
    out, nbs, params = interrupted_run
    saved = (out / "params.yaml").read_text()
    (out / "metrics" / "01_first.json").unlink()
    (out / "go").touch()
    assert main(["run", "--out", str(out), "--resume", "--notebooks", str(nbs)]) == 0  # the README's command
    assert (out / "params.yaml").read_text() == saved  # not replaced by params/default.yaml
    assert not (out / "metrics" / "01_first.json").exists()  # notebook 01 finished before: skipped, not redone
    assert json.loads((out / "metrics" / "02_second.json").read_text()) == {"seed": 7}
    state = json.loads((out / "run.json").read_text())
    assert state["seed"] == 7 and state["params_file"] == str(params)
    assert {v["status"] for v in state["notebooks"].values()} == {"ok"}


def test_resume_with_other_params_is_an_error_naming_both_files(interrupted_run, tmp_path, capsys):
    out, nbs, _ = interrupted_run
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"run": {"name": "mine", "seed": 8}}))
    saved = (out / "params.yaml").read_text()
    assert main(["run", "--params", str(other), "--out", str(out), "--resume", "--notebooks", str(nbs)]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and str(out / "params.yaml") in err
    assert (out / "params.yaml").read_text() == saved


def test_resume_with_the_same_params_file_is_fine(interrupted_run):
    out, nbs, params = interrupted_run
    (out / "go").touch()
    assert main(["run", "--params", str(params), "--out", str(out), "--resume", "--notebooks", str(nbs)]) == 0


def test_resume_needs_an_existing_run_folder(tmp_path, capsys):
    assert main(["run", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "params.yaml" in capsys.readouterr().err
    assert main(["run", "--resume"]) == 2
    assert "--out" in capsys.readouterr().err


def test_only_on_an_existing_folder_keeps_its_params(interrupted_run):
    out, nbs, params = interrupted_run
    saved = (out / "params.yaml").read_text()
    (out / "go").touch()
    assert main(["run", "--out", str(out), "--only", "2", "--notebooks", str(nbs)]) == 0
    assert (out / "params.yaml").read_text() == saved
    assert json.loads((out / "metrics" / "02_second.json").read_text()) == {"seed": 7}
    state = json.loads((out / "run.json").read_text())
    assert state["seed"] == 7 and state["params_file"] == str(params)


def test_killing_the_run_stops_the_notebook_kernel(tmp_path):
    """`kill` of the run's process group stops the kernel (papermill starts it in a session of its own) and what the
    notebook started, as Ctrl-C or a job scheduler's SIGTERM would."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    beats = [tmp_path / "kernel_beat", tmp_path / "child_beat"]
    loop = ("import os, time, pathlib\nwhile True:\n"
            "    pathlib.Path({!r}).write_text(f'{{os.getpid()}} {{time.time()}}')\n    time.sleep(0.05)\n")
    _notebook(nbs / "01_train.ipynb", "import subprocess, sys\n"
              f"subprocess.Popen([sys.executable, '-c', {loop.format(str(beats[1]))!r}])\n" + loop.format(str(beats[0])))
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"run": {"name": "hb", "seed": 0}}))
    proc = subprocess.Popen([str(VVKIT), "run", "--params", str(params), "--out", str(tmp_path / "run"),
                             "--notebooks", str(nbs)], start_new_session=True, cwd=Path(__file__).parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # the kernel starts in a few seconds on an idle machine
            if all(b.exists() for b in beats):
                break
            assert proc.poll() is None, "vvkit run ended before the notebook started"
            time.sleep(0.1)
        assert all(b.exists() for b in beats), "the notebook never started"
        os.killpg(proc.pid, signal.SIGTERM)  # what `kill -- -PGID` does
        proc.wait(timeout=60)
        time.sleep(2.0)
        last = [b.read_text() for b in beats]
        time.sleep(1.0)
        assert [b.read_text() for b in beats] == last, "the notebook kept running after its run was killed"
    finally:  # never leave the test's own processes behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for b in beats:
            if b.exists():
                try:
                    os.kill(int(b.read_text().split()[0]), signal.SIGKILL)
                except (ProcessLookupError, ValueError, IndexError):
                    pass


def test_params_reports_every_error_of_a_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"run": {"sede": 1}, "frames": {"fsp": 2},
                                   "data_synthesis": {"num_vidoes": 3}, "analysis": {"max_rows": "ten"},
                                   "no_such_notebook": {"a": 1}}))
    assert main(["params", str(bad)]) == 2
    err = capsys.readouterr().err
    for name in ("sede", "fsp", "num_vidoes", "max_rows", "no_such_notebook"):
        assert name in err, name
    assert str(bad) in err and "5 errors" in err


def test_params_accepts_a_good_file(capsys):
    root = Path(__file__).parents[1]
    assert main(["params", str(root / "params" / "smoke.yaml")]) == 0
    assert "ok" in capsys.readouterr().out
