"""Benchmark: the paper's experiment in miniature (paper §3-§6), on every seed. From one cached "instruct" policy
(supervised on captions and QA of single unedited toy clips), three arms run by the same code (vvkit.study):
`grpo` (DarkEventInfer, MixVidQA, multiple choice, open-ended QA and captions, one format-gated reward per task,
offline judge), `no_proxy` (the same GRPO with the proxy rows replaced by as many multiple-choice and caption rows)
and `sft` (the grpo rows' reference answers, same optimizer steps). Every task is scored on held-out rows (new
videos) with the real video and with a blank one.

    .venv/bin/python benchmarks/bench_study.py [--seeds 0 1 2] [--arms start grpo no_proxy sft] [--profile-steps 8]

Targets: on every seed GRPO lifts held-out DarkEventInfer by >= 0.3 (mean 0/1/2 judge score) and MixVidQA accuracy
by >= 15 points over the start; no task falls more than 3 points (0.06 for DarkEventInfer) below its start; every
task's blank-video score stays within 5 points of its start value. Writes benchmarks/results/study.json (atomic),
with the load average, wall times and a cProfile breakdown of a GRPO step (generation, rewards and judge, loss
forward/backward, data).
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import platform
import pstats
import shutil
import time
from pathlib import Path

import torch

from vvkit import study as S
from vvkit.io import atomic_write_json
from vvkit.schema import load_rows

HERE = Path(__file__).resolve().parent
DEI_LIFT, MIX_LIFT, MAX_DROP, DEI_MAX_DROP, BLANK_MARGIN = 0.3, 0.15, 0.03, 0.06, 0.05
# cProfile buckets of one GRPO step: (name, file fragment, function names); cumulative seconds of the outermost match
BUCKETS = (
    ("step_total", "transformers/trainer.py", ("training_step",)),
    ("generate_and_score", "", ("_generate_and_score_completions",)),
    ("generation", "transformers/generation/utils.py", ("generate",)),
    ("rewards", "", ("_calculate_rewards",)),
    ("judge", "vvkit/rewards/judges.py", ("score_dark_event", "score_mixvid", "autodq")),
    ("embedder", "vvkit/rewards/judges.py", ("_embed",)),
    ("ref_and_old_logps", "", ("_get_per_token_logps_and_entropies",)),
    ("loss_forward", "", ("compute_loss",)),
    ("backward", "torch/_tensor.py", ("backward",)),
    ("optimizer", "torch/optim/optimizer.py", ("wrapper",)),
    ("video_decode", "vvkit/video.py", ("read_clip", "load_video", "decode")),
    ("prompt_encoding", "", ("_encode_rows", "encode_prompt")),
    ("vision_tower", "qwen2_5_vl/modeling_qwen2_5_vl.py", ("get_video_features",)),
)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def profile_grpo(cfg: S.StudyConfig, instruct: Path, pool: dict, steps: int) -> dict:
    """cProfile `steps` GRPO steps of the grpo arm and bucket the time (seconds per step)."""
    pcfg = dataclasses.replace(cfg, root=str(Path(cfg.root) / "profile"), max_steps=steps)
    shutil.rmtree(S.arm_dir(pcfg, "grpo"), ignore_errors=True)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    S.run_arm(pcfg, "grpo", instruct, pool)
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # (file, line, func) -> (cc, nc, tt, ct, callers)
    out = {"steps": steps, "wall_s": round(wall, 2), "per_step_s": {}}
    for name, frag, funcs in BUCKETS:
        ct = [v[3] for (f, _, fn), v in stats.items() if fn in funcs and frag in f.replace("\\", "/")]
        out["per_step_s"][name] = round(max(ct, default=0.0) / steps, 4)
    top = sorted(stats.items(), key=lambda kv: -kv[1][1 + 1])[:25]  # by own time (tt)
    out["top_own_time"] = [{"func": f"{Path(f).name}:{ln}:{fn}", "own_s": round(v[2], 3), "cum_s": round(v[3], 3),
                            "calls": v[1]} for (f, ln, fn), v in top]
    return out


def check(runs: list[dict]) -> dict:
    """Each target per seed: lifts of the proxy tasks, no task falling, blank scores near the start's."""
    out = {}
    for seed in sorted({r["seed"] for r in runs}):
        by = {r["arm"]: r["tasks"] for r in runs if r["seed"] == seed}
        if "start" not in by or "grpo" not in by:
            continue
        s, g = by["start"], by["grpo"]
        drops = {t: g[t]["score"] - s[t]["score"] for t in S.TASKS}
        out[str(seed)] = {
            "dark_event_lift": round(drops["dark_event"], 3),
            "mixvid_lift": round(drops["mixvid"], 3),
            "dark_event_lift_met": drops["dark_event"] >= DEI_LIFT,
            "mixvid_lift_met": drops["mixvid"] >= MIX_LIFT,
            "no_task_falls": all(drops[t] >= -(DEI_MAX_DROP if t == "dark_event" else MAX_DROP) for t in S.TASKS),
            "blank_near_start": all(abs(g[t]["blank"] - s[t]["blank"]) <= BLANK_MARGIN * (2 if t == "dark_event" else 1)
                                    for t in S.TASKS),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(S.ARMS), choices=list(S.ARMS))
    ap.add_argument("--root", default=str(HERE / ".cache" / "study"))
    ap.add_argument("--out", default=str(HERE / "results" / "study.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None, help="GRPO / SFT optimizer steps (default: StudyConfig)")
    ap.add_argument("--instruct-steps", type=int, default=None)
    ap.add_argument("--eval-rows", type=int, default=None, help="held-out rows per task")
    ap.add_argument("--prompts", type=int, default=None, help="prompts per GRPO step")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--beta", type=float, default=None)
    ap.add_argument("--profile-steps", type=int, default=6, help="cProfile this many GRPO steps (0 = skip)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start, load_start = time.perf_counter(), load()
    over = {k: v for k, v in {"max_steps": args.max_steps, "instruct_steps": args.instruct_steps,
                              "eval_rows_per_task": args.eval_rows, "prompts_per_step": args.prompts,
                              "learning_rate": args.lr, "beta": args.beta}.items() if v is not None}
    base = dataclasses.replace(S.StudyConfig(root=args.root), **over)
    timings: dict = {}
    t0 = time.perf_counter()
    data = S.build_data(base)
    timings["data_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    instruct = S.build_instruct(base, data)
    timings["instruct_s"] = round(time.perf_counter() - t0, 1)
    pool = S.rl_pool(load_rows(data / "train.jsonl"))
    test = S.heldout_rows(load_rows(data / "test.jsonl"), base.eval_rows_per_task)
    profile = profile_grpo(base, instruct, pool, args.profile_steps) if args.profile_steps > 0 else None

    from vvkit.evaluate import make_judge

    judge = make_judge(S.eval_config(base))
    runs, start_cache = [], None
    for seed in args.seeds:
        cfg = dataclasses.replace(base, seed=seed)
        seed_t0 = time.perf_counter()
        for arm in args.arms:
            t0 = time.perf_counter()
            if arm == "start":
                # the start policy is the same for every seed; its held-out scores are computed once (eval seed 0)
                if start_cache is None:
                    start_cache = S.task_scores(str(instruct), test, base, Path(base.root) / "instruct_eval", judge)
                tasks, train_s, policy = start_cache, timings["instruct_s"], instruct
            else:
                shutil.rmtree(S.arm_dir(cfg, arm), ignore_errors=True)
                policy, train_s = S.run_arm(cfg, arm, instruct, pool)
                tasks = S.task_scores(str(policy), test, cfg, S.arm_dir(cfg, arm) / "eval", judge)
            rec = {"seed": seed, "arm": arm, "tasks": tasks, "train_seconds": round(train_s, 1),
                   "seconds": round(time.perf_counter() - t0, 1), "load": load()}
            runs.append(rec)
            print(f"seed {seed} {arm:8s} " + "  ".join(f"{t} {v['score']:.3f} (blank {v['blank']:.3f})"
                                                     for t, v in tasks.items())
                  + f"  train {train_s:.0f} s, load {rec['load'][0]}", flush=True)
            partial = {"seeds": args.seeds, "runs": runs, "status": "running"}
            atomic_write_json(args.out, partial)
        timings[f"seed{seed}_s"] = round(time.perf_counter() - seed_t0, 1)
    timings["total_s"] = round(time.perf_counter() - t_start, 1)
    seed0 = [r for r in runs if r["seed"] == args.seeds[0] and r["arm"] in ("start", "grpo")]
    demo_s = timings["data_s"] + timings["instruct_s"] + sum(r["seconds"] for r in seed0)
    result = {
        "seeds": args.seeds,
        "demo_seconds": round(demo_s, 1),
        "demo_seconds_note": "data + instruct policy + the first seed's start evaluation, GRPO arm and its "
                             "evaluation, as run by this benchmark (not `make demo` itself)",
        "runs": runs,
        "targets": {"dark_event_lift": DEI_LIFT, "mixvid_lift": MIX_LIFT, "max_drop": MAX_DROP,
                    "dark_event_max_drop": DEI_MAX_DROP, "blank_margin": BLANK_MARGIN},
        "checks": check(runs),
        "config": dataclasses.asdict(base),
        "timings_s": timings,
        "grpo_step_profile": profile,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_start": load_start, "load_average_end": load()},
        "status": "done",
    }
    print(f"checks: {result['checks']}")
    print(f"-> {atomic_write_json(args.out, result)} (total {timings['total_s']:.0f} s, load {load_start} -> {load()})")


if __name__ == "__main__":
    main()
