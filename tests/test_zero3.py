"""DeepSpeed ZeRO-3 (the paper's multi-GPU setup) on two CPU processes (gloo): the difficulty filter on every rank, two GRPO
steps of the tiny policy with the parameters partitioned over both ranks and a final policy saved whole
(`stage3_gather_16bit_weights_on_model_save`); and bf16 sampling and loss passes that see the same temporal positions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from vvkit.config import read_params, stage_config
from vvkit.model import load_policy
from vvkit.synth.build import build_dataset

ROOT = Path(__file__).resolve().parents[1]
DS_CPU = {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
          "bf16": {"enabled": False}, "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
          "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto"}


def zero3_run(tmp_path: Path, *extra: str, ds: dict | None = None) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 -m vvkit.train` on the smoke preset under a ZeRO-3 DeepSpeed config (gloo)."""
    params = read_params(ROOT / "params" / "smoke.yaml")
    build_dataset(stage_config(params, "data_synthesis", run_dir=str(tmp_path / "run")))
    (tmp_path / "ds.json").write_text(json.dumps(ds or DS_CPU))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    sets = [f"deepspeed={tmp_path / 'ds.json'}", "max_steps=2", "sft_steps=0", "report_to=none", "learning_rate=5e-3",
            'save_strategy="no"', 'rewards={reward_funcs: [accuracy, "dist_smoke:varied_reward"]}', *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vvkit.train",
           "--config", str(ROOT / "params" / "smoke.yaml"), "--run-dir", str(tmp_path / "run")]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_two_zero3_steps_with_the_difficulty_filter_on_two_cpu_processes(tmp_path):
    """params/paper.yaml filters rows before RL: under ZeRO-3 the filter once loaded the policy on the main process
    inside DeepSpeed's partitioned init while the other rank waited in a broadcast (gloo: "collective mismatch").
    Now both ranks filter their shard, then two ZeRO-3 steps train and save a whole policy."""
    proc = zero3_run(tmp_path, "difficulty_filter_k=2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("ZeRO-3 over 2 process(es)") == 1  # the estimate, printed once, plans ZeRO-3 over both
    assert "difficulty filter: kept" in proc.stdout and "over 2 process(es)" in proc.stdout
    settings = json.loads((tmp_path / "run" / "train" / "grpo" / "difficulty.json").read_text())
    assert settings["settings"]["k"] == 2 and settings["settings"]["processes"] == 2
    start, _ = load_policy(tmp_path / "run" / "policy" / "tiny")
    final, _ = load_policy(tmp_path / "run" / "train" / "grpo" / "final")
    a, b = start.state_dict(), final.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)  # gathered whole, not partitions
    assert all(not torch.equal(a[k], b[k]) for k in a)  # every weight took the two updates


def _temporal(spg: torch.Tensor, t: int, tokens_per_second: int) -> list[int]:
    """Qwen2.5-VL's temporal positions of a video of `t` temporal patches (get_vision_position_ids' arithmetic)."""
    return (torch.arange(t) * (tokens_per_second * spg)).long().tolist()


def test_bf16_sampling_and_loss_use_the_same_temporal_positions(tmp_path):
    """Under DeepSpeed bf16 TRL's `_prepare_input` cast `second_per_grid_ts` to bf16 for sampling while the loss
    passes kept it fp32: a 37.3 s clip of 16 frames sampled at temporal positions [0,9,18,28,...] and was scored at
    [0,9,18,27,...]. Two processes, bf16 on: every position a completion was sampled with is one its loss uses."""
    import yaml

    from vvkit.model import build_tiny_policy
    from vvkit.processing import get_processor
    from vvkit.rollout import encode_row
    from vvkit.schema import load_rows, save_rows
    from vvkit.video import FramePolicy

    params = read_params(ROOT / "params" / "smoke.yaml")
    params["frames"] = {**params["frames"], "nframes": 16}
    params["data_synthesis"].update(min_duration=20.0, max_duration=40.0, num_videos=16)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = tmp_path / "run"
    build_dataset(stage_config(params, "data_synthesis", run_dir=str(run)))
    processor = get_processor(build_tiny_policy(run / "policy" / "tiny", seed=0))
    frames = FramePolicy.from_dict(params["frames"])
    drifting, steady = [], []
    for row in load_rows(run / "data" / "train.jsonl"):
        enc = encode_row(processor, row, frames)[1]
        if enc.video_grid_thw is None:
            continue
        t, spg = int(enc.video_grid_thw[0][0]), enc.second_per_grid_ts[0]
        same = _temporal(spg, t, 2) == _temporal(spg.to(torch.bfloat16), t, 2)
        (steady if same else drifting).append(row)
    assert drifting, "no training clip whose temporal positions differ in bf16: the check would prove nothing"
    save_rows((drifting + steady)[:4], tmp_path / "rows.jsonl")
    ds = {**DS_CPU, "bf16": {"enabled": True}}
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    sets = [f"deepspeed={tmp_path / 'ds.json'}", "bf16=true", "max_steps=1", "sft_steps=0", "report_to=none",
            'save_strategy="no"', f"train_data={tmp_path / 'rows.jsonl'}", "train_mix=null", "instruct_steps=0",
            "per_device_train_batch_size=2", "num_generations=2", "max_completion_length=4"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "dist_positions.py"), str(tmp_path), "--", "--config", str(tmp_path / "params.yaml"),
           "--run-dir", str(run)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in (0, 1):
        recs = json.loads((tmp_path / f"positions_rank{rank}.json").read_text())
        sampled = {(tuple(r["grid"]), tuple(r["temporal"])) for r in recs if r["pass"] == "sample"}
        scored = {(tuple(r["grid"]), tuple(r["temporal"])) for r in recs if r["pass"] == "logp"}
        assert sampled and scored
        assert sampled <= scored, f"rank {rank}: sampled at {sorted(sampled - scored)}, scored at {sorted(scored)}"
        assert {r["dtype"] for r in recs} == {"torch.float32"}
