"""Benchmark: does GRPO teach the tiny offline policy something it did not know? Held-out accuracy of the SFT warm
start and of the policy after GRPO from it (same seed), each with the real video and with a blank video.

Recipe: the toy world's `simple` colour question as four-option multiple choice. The SFT warm start answers with the
option's words (`sft_answer: text`, which the parser maps to the letter), so neither stage has to learn the
word-to-letter lookup that stalled the learning calibration; it is stopped while it sees the colour only partly. GRPO
with the format-gated accuracy reward (paper §4) then has to improve what the policy sees from the reward alone; a
small KL to the warm start (beta) keeps groups of completions diverse. Blank-video accuracy must stay near chance: a
policy that scores as well without the video is not watching it. Everything runs through the library:
build_dataset, build_tiny_policy, warm_start, train (PolicyEval hook every --eval-every steps) and evaluate under
the `video` and `blank` conditions. `--control-sft-steps N` also measures N more SFT steps instead of GRPO.

    .venv/bin/python benchmarks/bench_learning.py [--steps 500] [--lr 2e-4] [--sft-steps 250] [--seed 0]

Goal: GRPO lifts held-out accuracy by >= 15 points with warm start + GRPO within 10 minutes on 2 CPU cores, while
blank-video accuracy stays near chance. Writes benchmarks/results/learning.json (atomic): every setting, accuracy
per checkpoint with n and binomial SE, wall times, step counts and the load average at start and end (on a shared
machine wall times are inflated; compare step counts).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from vvkit.config import SynthConfig
from vvkit.grpo_config import TrainConfig
from vvkit.evaluate import EvalConfig, evaluate
from vvkit.rewards import make_judge
from vvkit.io import atomic_write_json
from vvkit.model import build_tiny_policy, count_parameters, load_policy
from vvkit.schema import load_rows
from vvkit.synth.build import build_dataset
from vvkit.sft import warm_start
from vvkit.train import train

HERE = Path(__file__).resolve().parent
FRAMES = {"nframes": 8, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "decord"}
CONDITIONS = ("video", "blank")
GOAL_LIFT, GOAL_MINUTES, CHANCE_MARGIN = 0.15, 10.0, 0.10
TRAIN_KEYS = ("sft_steps", "sft_lr", "sft_batch_size", "sft_answer", "learning_rate", "lr_scheduler_type", "beta",
              "loss_type", "scale_rewards", "epsilon", "num_iterations", "num_generations", "temperature",
              "max_completion_length", "per_device_train_batch_size", "max_steps", "rewards", "seed")


def binomial(correct: int, n: int) -> dict:
    """Accuracy with its binomial standard error sqrt(p (1 - p) / n)."""
    p = correct / n if n else math.nan
    return {"accuracy": p, "se": math.sqrt(p * (1 - p) / n) if n else math.nan, "correct": correct, "n": n}


def answer_counts(preds: list[dict], top: int = 8) -> dict[str, int]:
    """How often each answer was given (a policy that ignores the video gives one answer to every blank video)."""
    counts: dict[str, int] = {}
    for p in preds:
        key = str(p.get("answer"))[:40]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def score(policy: Any, rows: list, cfg: EvalConfig, judge: Any) -> dict:
    """Greedy held-out accuracy (binomial SE), format rate and answer counts per condition, via vvkit.evaluate."""
    out = {}
    for cond in CONDITIONS:
        res = evaluate(policy, rows, cfg, condition=cond, judge=judge)
        m = res.metrics["mcq"]
        out[cond] = {**binomial(int(round(m["accuracy"] * m["n"])), m["n"]), "format_rate": m["format_rate"],
                     "chance": m["chance"], "answers": answer_counts(res.predictions)}
    return out


class HeldOut:
    """The PolicyEval hook: scores the policy under training and notes the GRPO wall time so far, evaluations
    excluded (the first call, at step 0, scores the warm start)."""

    def __init__(self, rows: list, cfg: EvalConfig):
        self.rows, self.cfg, self.judge = rows, cfg, make_judge(**cfg.reward_config().settings())
        self.eval_s, self.history, self._start = 0.0, [], None

    def __call__(self, model: Any, processor: Any) -> dict:
        t0 = time.perf_counter()
        grpo_s = 0.0 if self._start is None else t0 - self._start - self.eval_s
        out = {"grpo_s": round(grpo_s, 1), **score((model, processor), self.rows, self.cfg, self.judge)}
        if self._start is None:
            self._start = time.perf_counter()  # GRPO time counts from the end of the step-0 evaluation
        else:
            self.eval_s += time.perf_counter() - t0
        self.history.append(out)
        return {f"{c}_accuracy": out[c]["accuracy"] for c in CONDITIONS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=500, help="GRPO optimizer steps")
    ap.add_argument("--lr", type=float, default=2e-4, help="GRPO learning rate (constant)")
    ap.add_argument("--beta", type=float, default=0.04, help="KL weight to the warm start")
    ap.add_argument("--gate", default="multiply", choices=["multiply", "add"],
                    help="reward = format x accuracy (paper) or format + accuracy (Video-R1)")
    ap.add_argument("--generations", type=int, default=8, help="G completions per prompt")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per GRPO step")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-completion-length", type=int, default=16)
    ap.add_argument("--sft-steps", type=int, default=250)
    ap.add_argument("--sft-lr", type=float, default=1e-3)
    ap.add_argument("--sft-batch-size", type=int, default=32)
    ap.add_argument("--sft-answer", default="text", choices=["letter", "text"])
    ap.add_argument("--control-sft-steps", type=int, default=0, help="also score a warm start with this many more "
                    "SFT steps (the supervised alternative to GRPO); 0 = off")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-videos", type=int, default=1600, help="toy videos; a quarter are held out")
    ap.add_argument("--eval-rows", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=50, help="held-out evaluation every N GRPO steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="redo the warm start even if one with these settings exists")
    ap.add_argument("--work", default=str(HERE / ".cache" / "learning"), help="data, policy and run folders")
    ap.add_argument("--out", default=str(HERE / "results" / "learning.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start, t_start = os.getloadavg(), time.perf_counter()
    work, timings = Path(args.work), {}

    # ---- data: one-shape toy videos, the colour question, multiple choice only (cached across runs) ----
    synth = SynthConfig(run_dir=str(work), seed=args.seed, frames=FRAMES, num_videos=args.num_videos,
                        test_fraction=0.25, difficulty="simple", task_mix={"mcq": 1.0}, size=56, fps=8.0,
                        min_duration=4.0, max_duration=6.0, out_dir="data")
    t0 = time.perf_counter()
    summary = build_dataset(synth)
    timings["data_s"] = time.perf_counter() - t0
    data = Path(summary["out_dir"])
    test_rows = load_rows(data / "test.jsonl")
    if len(test_rows) < args.eval_rows:
        raise SystemExit(f"only {len(test_rows)} held-out rows for --eval-rows {args.eval_rows}; raise --num-videos")
    test_rows = test_rows[: args.eval_rows]
    t0 = time.perf_counter()
    policy = build_tiny_policy(work / "policy" / f"tiny_seed{args.seed}", seed=args.seed)
    timings["policy_build_s"] = time.perf_counter() - t0

    # ---- warm start (one folder per SFT setting, reused unless --fresh), then GRPO (one folder per setting) ----
    run_dir = work / f"seed{args.seed}_sft{args.sft_steps}_{args.sft_answer}_lr{args.sft_lr:g}_bs{args.sft_batch_size}"
    grpo_dir = run_dir / "train" / (f"grpo_lr{args.lr:g}_b{args.beta:g}_{args.gate}_g{args.generations}x{args.prompts}"
                                    f"_t{args.temperature:g}_s{args.steps}")
    if args.fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(grpo_dir, ignore_errors=True)
    settings = dict(
        run_dir=str(run_dir), output_dir=str(grpo_dir), seed=args.seed, frames=FRAMES, policy=str(policy),
        train_data=str(data / "train.jsonl"), sft_steps=args.sft_steps, sft_lr=args.sft_lr,
        sft_batch_size=args.sft_batch_size, sft_answer=args.sft_answer, rewards={"reward_funcs": ["accuracy"], "gate": args.gate},
        learning_rate=args.lr, lr_scheduler_type="constant", beta=args.beta, loss_type="dapo",
        num_generations=args.generations, temperature=args.temperature,
        max_completion_length=args.max_completion_length, per_device_train_batch_size=args.prompts * args.generations,
        max_steps=args.steps, save_strategy="no", logging_steps=10, report_to="none", disable_tqdm=True,
        save_completions=4)
    cfg = TrainConfig(**settings)
    sft_reused = (run_dir / "train" / "warm_start" / "policy" / "warm_start.json").exists()
    t0 = time.perf_counter()
    warm = warm_start(cfg)
    timings["sft_s"] = time.perf_counter() - t0
    eval_cfg = EvalConfig(frames=FRAMES, batch_size=100, max_new_tokens=args.max_completion_length + 8,
                          seed=args.seed, progress=False)
    hook = HeldOut(test_rows, eval_cfg)
    t0 = time.perf_counter()
    final = train(cfg, eval_fn=hook, eval_every=args.eval_every)
    timings["grpo_with_evals_s"] = time.perf_counter() - t0
    timings["grpo_s"] = hook.history[-1]["grpo_s"]
    timings["eval_s"] = timings["grpo_with_evals_s"] - timings["grpo_s"]

    # ---- optional control: the same warm start trained on with SFT instead of GRPO ----
    control = None
    if args.control_sft_steps > 0:
        ccfg = TrainConfig(**{**settings, "run_dir": str(work / f"{run_dir.name}_plus{args.control_sft_steps}"),
                              "sft_steps": args.sft_steps + args.control_sft_steps})
        t0 = time.perf_counter()
        cpolicy = warm_start(ccfg)
        control = {"sft_steps": ccfg.sft_steps, "sft_s": round(time.perf_counter() - t0, 1),
                   **score(str(cpolicy), test_rows, eval_cfg, hook.judge)}
    timings["total_s"] = time.perf_counter() - t_start
    load_end = os.getloadavg()

    steps = [0] + list(range(args.eval_every, args.steps, args.eval_every)) + [args.steps]
    checkpoints = [{"step": s, **h} for s, h in zip(steps, hook.history)]
    start, end = checkpoints[0], checkpoints[-1]
    lift = end["video"]["accuracy"] - start["video"]["accuracy"]
    lift_se = math.hypot(end["video"]["se"], start["video"]["se"])
    chance = start["video"]["chance"]
    blank_ok = all(abs(c["blank"]["accuracy"] - chance) <= CHANCE_MARGIN for c in checkpoints)
    train_minutes = (timings["sft_s"] + timings["grpo_s"]) / 60
    result = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_start": [round(x, 2) for x in load_start],
                    "load_average_end": [round(x, 2) for x in load_end]},
        "settings": {"args": vars(args), "frames": FRAMES, "synth": dataclasses.asdict(synth),
                     "train": {k: getattr(cfg, k) for k in TRAIN_KEYS}, "eval": dataclasses.asdict(eval_cfg),
                     "parameters": count_parameters(load_policy(final)[0])},
        "data": {"train_rows": sum(summary["counts"]["train"].values()), "test_rows_used": len(test_rows),
                 "cached": summary.get("cached", False)},
        "timings_s": {k: round(v, 1) for k, v in timings.items()}, "sft_reused": sft_reused,
        "checkpoints": checkpoints,
        "warm_start": {"policy": str(warm), "sft_steps": args.sft_steps, **{c: start[c] for c in CONDITIONS}},
        "grpo": {"policy": str(final), "steps": args.steps, **{c: end[c] for c in CONDITIONS}},
        "control_sft": control,
        "lift_points": round(100 * lift, 1), "lift_se_points": round(100 * lift_se, 1),
        "goal": f"lift >= {100 * GOAL_LIFT:g} points with warm start + GRPO <= {GOAL_MINUTES:g} min on 2 cores, "
                f"blank accuracy within {CHANCE_MARGIN} of chance at every checkpoint",
        "goal_lift_met": lift >= GOAL_LIFT, "goal_time_met": train_minutes <= GOAL_MINUTES and not sft_reused,
        "goal_blank_near_chance": blank_ok,
    }
    out = atomic_write_json(args.out, result)
    for c in checkpoints:
        print(f"step {c['step']:4d} ({c['grpo_s']:5.0f} s): video {c['video']['accuracy']:.3f} ± {c['video']['se']:.3f}"
              f"  blank {c['blank']['accuracy']:.3f}  format {c['video']['format_rate']:.2f}")
    if control:
        print(f"control: SFT to {control['sft_steps']} steps: video {control['video']['accuracy']:.3f}, "
              f"blank {control['blank']['accuracy']:.3f}")
    print(f"lift {100 * lift:+.1f} ± {100 * lift_se:.1f} points (goal >= {100 * GOAL_LIFT:g}); SFT {timings['sft_s']:.0f} s"
          f"{' (reused)' if sft_reused else ''}, GRPO {timings['grpo_s']:.0f} s + eval {timings['eval_s']:.0f} s; "
          f"load {load_start[0]:.1f} -> {load_end[0]:.1f} -> {out}")


if __name__ == "__main__":
    main()
