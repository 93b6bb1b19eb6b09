"""benchmarks/bench_gpu_step.py, the GPU check, runs its whole code path on the CPU with --cpu-smoke (a micro model,
16 frames at 56x56) and writes a result whose numbers are sane."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke_writes_sane_results(tmp_path):
    out = tmp_path / "gpu_step.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu_step.py"), "--cpu-smoke", "--out",
                          str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res) == {"setup", "decode", "vision", "update", "logprobs", "wall_s"}
    assert res["setup"]["frames"] == 16 and res["setup"]["vision_patches"] == 8 * 4 * 4
    assert res["decode"]["decode_ms_per_token"] > 0 and res["decode"]["new_tokens"] == 4
    assert res["vision"]["sdpa"]["ms"] > 0
    flash = res["vision"]["flash_attention_2"]
    assert ("ms" in flash) != ("error" in flash)  # timed, or the reason it could not be
    upd = res["update"]
    assert upd["update_s"] == round(upd["generate_s"] + upd["loss_pass_s"] + upd["optimizer_s"], 3) > 0
    assert upd["estimate_gib"] > 0 and upd["estimate_phase"] in ("generation", "update", "step")
    assert upd["peak_gib"] == {"generation": None, "update": None, "step": None}  # measured on CUDA only
    lp = res["logprobs"]
    assert lp["tokens"] == 2 * 4 and math.isfinite(lp["mean_logp"]) and lp["mean_logp"] < 0
    assert 0 <= lp["rollout_vs_loss"]["max"] < 0.05  # same weights, same positions: sampling agrees with the loss
    assert lp["bf16_seconds_vs_fp32"]["max"] > 0  # bf16 seconds-per-grid moves M-RoPE positions: log-probs move
    assert lp["seconds_per_grid"]["bf16"] != lp["seconds_per_grid"]["fp32"]
