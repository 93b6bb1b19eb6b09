"""DeepSpeed ZeRO-3 (the paper's multi-GPU setup) on two CPU processes (gloo): two GRPO steps of the tiny policy with
the parameters partitioned over both ranks, the tiny policy built whole by the main process, and a final policy
saved whole (`stage3_gather_16bit_weights_on_model_save`) that loads back with every weight trained."""
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


def test_two_zero3_steps_on_two_cpu_processes(tmp_path):
    params = read_params(ROOT / "params" / "smoke.yaml")
    build_dataset(stage_config(params, "data_synthesis", run_dir=str(tmp_path / "run")))
    (tmp_path / "ds.json").write_text(json.dumps(DS_CPU))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    sets = [f"deepspeed={tmp_path / 'ds.json'}", "max_steps=2", "sft_steps=0", "report_to=none", "learning_rate=5e-3",
            'save_strategy="no"', 'rewards={reward_funcs: [accuracy, "dist_smoke:varied_reward"]}']
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vvkit.train",
           "--config", str(ROOT / "params" / "smoke.yaml"), "--run-dir", str(tmp_path / "run")]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("ZeRO-3 over 2 process(es)") == 2  # both ranks partition the model
    start, _ = load_policy(tmp_path / "run" / "policy" / "tiny")
    final, _ = load_policy(tmp_path / "run" / "train" / "grpo" / "final")
    a, b = start.state_dict(), final.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)  # gathered whole, not partitions
    assert all(not torch.equal(a[k], b[k]) for k in a)  # every weight took the two updates
