"""The shipped instruct start (starts/instruct-tiny, vvkit.shipped_start): it loads, its files match its manifest, the
manifest's recipe is what params/instruct_start.yaml builds, it never saw a dark or interleaved video, the study
starts from it, and the build writes a folder the loader accepts."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vvkit import study as S
from vvkit.config import ConfigError, read_params, stage_config
from vvkit.data import INSTRUCT_TASKS
from vvkit.instruct import start_policy
from vvkit.model import build_tiny_policy, load_policy
from vvkit.shipped_start import START_MANIFEST, START_PARAMS, check_start, shipped_start, start_recipe

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "starts" / "instruct-tiny"


def _manifest(folder: Path = START) -> dict:
    return json.loads((folder / START_MANIFEST).read_text())


def test_the_shipped_start_matches_its_manifest_and_its_params():
    assert check_start(START, read_params(ROOT / START_PARAMS)) == []
    model, processor = load_policy(shipped_start("starts/instruct-tiny"))
    assert model.config.model_type == "qwen2_5_vl" and processor.tokenizer.convert_tokens_to_ids("<think>") > 0


def test_the_shipped_start_never_saw_a_dark_or_interleaved_video():
    m = _manifest()
    assert set(m["rows"]["by_task"]) == set(INSTRUCT_TASKS) and m["rows"]["train"] == sum(m["rows"]["by_task"].values())
    assert set(m["recipe"]["data"]["task_mix"]) <= set(INSTRUCT_TASKS)
    study = read_params(ROOT / "params" / "default.yaml")
    assert m["recipe"]["data"]["seed"] != study["run"]["seed"]  # another world: none of the study's videos
    assert m["recipe"]["frames"] == study["frames"]  # the frame policy the study trains and evaluates with
    assert [p["steps"] for p in m["curve"]][-1] == m["recipe"]["steps"] and set(m["final"]) == set(INSTRUCT_TASKS)


def test_the_study_starts_from_the_shipped_start(tmp_path):
    params = read_params(ROOT / "params" / "default.yaml")
    cfg = stage_config(params, "grpo_training", run_dir=str(tmp_path))
    assert cfg.instruct_start and cfg.instruct_steps == 0 and cfg.sft_steps == 0
    assert start_policy(cfg, rows=[]) == START
    with pytest.raises(ConfigError, match="instruct_start"):
        stage_config(params, "grpo_training", run_dir=str(tmp_path), overrides={"instruct_steps": 10})


def test_a_changed_file_or_recipe_is_named(tmp_path):
    copy = tmp_path / "start"
    shutil.copytree(START, copy)
    params = read_params(ROOT / START_PARAMS)
    assert check_start(copy, params) == []
    tok = copy / "tokenizer_config.json"
    tok.write_text(tok.read_text() + " ")
    problems = check_start(copy, params)
    assert len(problems) == 1 and "tokenizer_config.json" in problems[0] and "sha256" in problems[0]
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json"):
        shipped_start(copy)
    params["grpo_training"]["sft_lr"] = 5e-4
    assert any("recipe differs" in p and "'lr'" in p for p in check_start(START, params))
    (copy / START_MANIFEST).unlink()
    assert "tools/build_start.py" in check_start(copy)[0]


def test_build_start_writes_a_start_the_loader_accepts(tmp_path):
    """The build at micro scale: its own world of instruct rows, two cached stages with a curve point after each."""
    params = read_params(ROOT / START_PARAMS)
    params["run"]["policy"] = str(build_tiny_policy(tmp_path / "micro", seed=0, size="micro"))
    params["data_synthesis"].update(num_videos=40, test_fraction=0.25)
    params["grpo_training"].update(instruct_steps=2, instruct_stage_steps=1, sft_batch_size=2)
    params["analysis"].update(rows_per_task=2, max_new_tokens=6)
    path = tmp_path / "start.yaml"
    path.write_text(json.dumps(params))
    out = S.build_start(path, tmp_path / "start", tmp_path / "work")
    assert check_start(out, params) == [] and shipped_start(out) == out
    m = _manifest(out)
    assert m["recipe"] == start_recipe(params) and [p["steps"] for p in m["curve"]] == [1, 2]
    assert all(set(p["tasks"]) == set(INSTRUCT_TASKS) for p in m["curve"])
    assert len(list((tmp_path / "work" / "stages").iterdir())) == 2  # resumable: one cached folder per stage
    params["data_synthesis"]["task_mix"] = {"mcq": 1.0, "dark_event": 1.0}
    path.write_text(json.dumps(params))
    with pytest.raises(ValueError, match="dark_event"):
        S.build_start(path, tmp_path / "start2", tmp_path / "work2")


def test_with_the_shipped_start_every_training_video_goes_to_rl(tmp_path):
    """The shipped start saw none of the run's videos, so RL draws from all of them; a start built for the run's
    data keeps the other half for RL."""
    from vvkit.data import rl_rows
    from vvkit.schema import Row

    params = read_params(ROOT / "params" / "default.yaml")
    rows = [Row(id=f"r{i}", video=f"v{i}.mp4", problem="q", solution="a", problem_type="caption") for i in range(40)]
    shipped = stage_config(params, "grpo_training", run_dir=str(tmp_path), overrides={"train_mix": None})
    assert rl_rows(shipped, rows) == rows
    cached = stage_config(params, "grpo_training", run_dir=str(tmp_path),
                          overrides={"train_mix": None, "instruct_start": None, "instruct_steps": 10})
    assert 0 < len(rl_rows(cached, rows)) < len(rows)
