"""Benchmark: the measured peak memory of GRPO steps on the CPU against `vvkit.budget.estimate_memory` for the same
config (device "cpu": no CUDA context).

A mid-size random Qwen2.5-VL (text: hidden 512, 8 layers, gated MLP 2816, GQA 4/2 heads of 128; vision: hidden 320,
depth 8, MLP 864, window attention with full attention in blocks 3 and 7; ~55M parameters, the tiny policy's
tokenizer) trains with `vvkit.train.train` on 16-frame videos at <= 168x168 pixels (1,152 patches, 288 video tokens
per video): G = 4 completions of 64 tokens (forced to full length, the estimate's assumption), fp32 (no bf16 on the
CPU), AdamW, two optimizer steps: the second is the steady state (Adam's states exist from the first step on). Two
configurations, each in its own process (the two run side by side, one thread each): activation checkpointing on
(the paper's) and off.

Memory is the process's resident set: `/proc/self/clear_refs` resets the high-water mark (VmHWM) at each phase
boundary (generation, update, optimizer step), so each phase's peak is read separately; the baseline is the resident
set just before the policy is loaded (torch, TRL and vvkit imported). glibc's mmap threshold is pinned at 1 MiB so
that freed tensors go back to the system and the resident set follows live tensors, as `max_memory_allocated` does
on a GPU. Video decoding, the processor, the trainer and the dataset count as measured; the estimate stands for them
with its `cpu runtime` line (256 MiB, set from these runs: the generation and optimizer phases sit ~230 MiB above the
tensors they hold).

    .venv/bin/python benchmarks/bench_memory.py [--threads 1] [--cases ckpt full]

Goal: the estimate within 25% of the measured peak, and not below it. Writes benchmarks/results/memory.json.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mid_world import FRAMES, mid_policy, square_rows

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 2**20
GOAL = 0.25
RUN = dict(num_generations=4, per_device_train_batch_size=4, gradient_accumulation_steps=1, max_completion_length=64,
           max_steps=2, learning_rate=1e-5, beta=0.0, temperature=1.0, seed=0)
CASES = {"ckpt": {"activation_checkpointing": True}, "full": {"activation_checkpointing": False}}


# ---- memory probes (Linux /proc) ------------------------------------------------------------------------------------
def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> None:
    """Reset the resident-set high-water mark (Linux >= 4.0: `echo 5 > /proc/PID/clear_refs`)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Phases:
    """The resident-set peak of each phase above a baseline: `mark(name)` closes the running phase."""

    def __init__(self) -> None:
        self.base, self.name, self.step, self.peaks, self.t0 = _status("VmRSS"), "setup", 0, [], time.perf_counter()
        reset_peak()

    def mark(self, name: str, step: int) -> None:
        self.peaks.append({"phase": self.name, "step": self.step, "peak_mib": (_status("VmHWM") - self.base) / MIB,
                           "end_mib": (_status("VmRSS") - self.base) / MIB, "file_mib": _status("RssFile") / MIB,
                           "anon_mib": _status("RssAnon") / MIB, "s": round(time.perf_counter() - self.t0, 1)})
        self.t0 = time.perf_counter()
        self.name, self.step = name, step
        reset_peak()


# ---- the policy folder and the rows (parent process) ---------------------------------------------------------------
def build_world(root: Path) -> tuple[Path, Path]:
    """The mid-size policy and 4 mcq rows over two 32-frame 224x224 videos (`mid_world`)."""
    from vvkit.schema import save_rows

    policy = mid_policy(root)
    save_rows(square_rows(root, per_video=2), root / "train.jsonl")
    return policy, root / "train.jsonl"


# ---- one configuration (child process) -----------------------------------------------------------------------------
def child(case: str, root: Path, threads: int) -> dict:
    """Train two GRPO steps on `root`'s policy and rows; the per-phase peaks and the estimate for the same config."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, MIB)  # M_MMAP_THRESHOLD: fixed, so freed large blocks return to the system
    import torch
    from transformers import AutoConfig, TrainerCallback

    import vvkit.grpo_trainer as gt
    from vvkit.budget import estimate_memory
    from vvkit.grpo_config import TrainConfig
    from vvkit.train import train

    torch.set_num_threads(threads)
    cfg = TrainConfig(run_dir=str(root / case), policy=str(root / "policy"), train_data=str(root / "train.jsonl"),
                      frames=FRAMES, rewards={"reward_funcs": ["accuracy"], "gate": "multiply", "judge": "offline"},
                      generation_kwargs={"min_new_tokens": RUN["max_completion_length"]}, report_to="none",
                      save_strategy="no", logging_steps=1, disable_tqdm=True, save_completions=0,
                      **RUN, **CASES[case])
    est = estimate_memory(cfg, AutoConfig.from_pretrained(root / "policy"), device="cpu")
    phases, prompt_tokens = Phases(), []
    original = gt.VideoGRPOTrainer._generate_and_score_completions

    def generate(self, inputs):  # the phase boundaries around TRL's generation (rewards and no-grad passes included)
        phases.mark("generation", self.state.global_step + 1)
        try:
            output = original(self, inputs)
            prompt_tokens.append(int(output["prompt_mask"].sum(1).max()))
            return output
        finally:
            phases.mark("update", self.state.global_step + 1)

    class Marks(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kw):
            phases.mark("step", state.global_step + 1)

        def on_optimizer_step(self, args, state, control, **kw):
            phases.mark("logging", state.global_step)

        def on_train_end(self, args, state, control, **kw):
            phases.mark("save", state.global_step)

    gt.VideoGRPOTrainer._generate_and_score_completions = generate
    t0 = time.perf_counter()
    train(cfg, callbacks=[Marks()])
    phases.mark("end", cfg.max_steps)
    return {"case": case, "train_s": round(time.perf_counter() - t0, 1), "peaks": phases.peaks,
            "prompt_tokens": max(prompt_tokens),
            "estimate": est.as_dict()}


# ---- comparison (parent) --------------------------------------------------------------------------------------------
def compare(result: dict) -> dict:
    """Measured peak per phase (max over steps; the last step is the steady state) against the estimate's phases."""
    est = result["estimate"]
    measured = {}
    for p in result["peaks"]:
        if p["phase"] in ("generation", "update", "step"):
            measured[p["phase"]] = max(measured.get(p["phase"], 0.0), p["peak_mib"])
    last = {p["phase"]: round(p["peak_mib"], 1) for p in result["peaks"] if p["step"] == RUN["max_steps"]}
    peak = max(measured.values())
    total = est["total"] / MIB
    return {"case": result["case"], "activation_checkpointing": CASES[result["case"]]["activation_checkpointing"],
            "measured_peak_mib": round(peak, 1), "estimate_mib": round(total, 1),
            "estimate_over_measured": round(total / peak, 3), "within_goal": abs(total / peak - 1) <= GOAL,
            "upper_bound": total >= peak, "measured_phase": max(measured, key=measured.get),
            "estimate_phase": est["peak_phase"],
            "phases_mib": {k: {"measured": round(v, 1), "estimate": round(est["phases"][k] / MIB, 1)}
                           for k, v in measured.items()},
            "prompt_tokens": {"measured": result["prompt_tokens"], "estimate": est["tokens"]["prompt_tokens"]},
            "last_step_mib": last, "setup_mib": round(result["peaks"][0]["peak_mib"], 1),
            "estimate_parts_mib": {k: round(v / MIB, 1) for k, v in est["parts"].items()},
            "estimate": est, "train_s": result["train_s"], "peaks": result["peaks"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per configuration (they run side by side)")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["ckpt", "full"])
    ap.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, Path(args.root), args.threads)))
        return 0

    import torch

    from vvkit.io import atomic_write_json

    load = os.getloadavg()
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="vvkit_bench_memory_"))
    try:
        build_world(root)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        procs = {case: subprocess.Popen([sys.executable, __file__, "--child", case, "--root", str(root), "--threads",
                                         str(args.threads)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=ROOT, env=env)
                 for case in args.cases}  # side by side: each process's resident set is its own
        cases = []
        for case, proc in procs.items():
            stdout, stderr = proc.communicate()
            line = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(stdout[-3000:], stderr[-3000:], file=sys.stderr)
                return 1
            rec = compare(json.loads(line[-1][len("RESULT "):]))
            cases.append(rec)
            print(f"{case}: measured {rec['measured_peak_mib']:.0f} MiB ({rec['measured_phase']}), estimate "
                  f"{rec['estimate_mib']:.0f} MiB ({rec['estimate_phase']}): x{rec['estimate_over_measured']}",
                  flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    params = cases[0]["estimate"]["setup"]["parameters"]
    result = {
        "setup": {"command": " ".join(["python benchmarks/bench_memory.py", *sys.argv[1:]]), "threads": args.threads,
                  "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
                  "cpu_count": os.cpu_count(), "load_avg_before": [round(x, 2) for x in load],
                  "load_avg_after": [round(x, 2) for x in os.getloadavg()], "parameters": params,
                  "policy_size": "mid (vvkit.model.SIZES)", "frames": FRAMES, "run": RUN,
                  "malloc_mmap_threshold": MIB, "wall_s": round(time.perf_counter() - t0, 1)},
        "goal": f"estimate within {GOAL:.0%} of the measured peak and not below it",
        "goal_met": all(c["within_goal"] and c["upper_bound"] for c in cases),
        "cases": cases,
    }
    path = atomic_write_json(HERE / "results" / "memory.json", result)
    print(f"goal met: {result['goal_met']} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
