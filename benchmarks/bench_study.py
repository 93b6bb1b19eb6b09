"""Benchmark: the paper's experiment in miniature (paper §3-§6), on every seed. From the shipped "instruct" policy
(starts/instruct-tiny: supervised on captions and QA of single unedited clips of its own toy world, built once by
tools/build_start.py), three arms run by the same code (vvkit.study, vvkit.train):
`grpo` (DarkEventInfer, MixVidQA, multiple choice, open-ended QA and captions, one format-gated reward per task,
offline judge), `no_proxy` (the same GRPO with the proxy rows replaced by as many multiple-choice and caption rows)
and `sft` (the grpo rows' reference answers, same optimizer steps). Every task is scored on held-out rows (new
videos) with the real video and with a blank one.

    .venv/bin/python benchmarks/bench_study.py [--seeds 0 1 2] [--arms start grpo no_proxy sft] [--set max_steps=40]

Every setting comes from params/default.yaml (the preset `make demo` runs): the data is built once from the file's
seed; each benchmark seed is GRPO's (and the SFT control's) sampling seed and draws its own order of the RL rows.

Targets: on every seed GRPO lifts held-out DarkEventInfer by >= 0.3 (mean 0/1/2 judge score) and MixVidQA accuracy
by >= 15 points over the start; no task falls more than 3 points (0.06 for DarkEventInfer) below its start; every
task's blank-video score stays within 5 points of its start value. Writes benchmarks/results/study.json (atomic),
with the load average, wall times, each trained arm's logged training curve and a cProfile breakdown of a GRPO step
(generation, rewards and judge, loss forward/backward, data), and the RL arms' curves as study_curves.png beside it.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import time
from pathlib import Path

import torch

from vvkit import study as S
from vvkit.config import parse_overrides, read_params, stage_config
from vvkit.io import atomic_write_json
from vvkit.rewards import make_judge
from vvkit.schema import load_rows
from vvkit.data import heldout_rows
from vvkit.instruct import start_policy
from vvkit.shipped_start import START_MANIFEST, read_manifest
from vvkit.viz import save

HERE = Path(__file__).resolve().parent
CONDITIONS = ("video", "blank")  # the targets need the blank control; notebook 04 adds shuffled and no video
DEI_LIFT, MIX_LIFT, MAX_DROP, DEI_MAX_DROP, BLANK_MARGIN = 0.3, 0.15, 0.03, 0.06, 0.05
# cProfile buckets of one GRPO step: (name, file fragment, function names); cumulative seconds of the outermost match
BUCKETS = (
    ("step_total", "transformers/trainer.py", ("training_step",)),
    ("generate_and_score", "", ("_generate_and_score_completions",)),
    ("generation", "transformers/generation/utils.py", ("generate",)),
    ("rewards", "", ("_calculate_rewards",)),
    ("judge", "vvkit/rewards/judges.py", ("score_dark_event", "score_mixvid", "autodq")),
    ("embedder", "vvkit/rewards/embedder.py", ("_embed",)),
    ("ref_and_old_logps", "", ("_get_per_token_logps_and_entropies",)),
    ("loss_forward", "", ("compute_loss",)),
    ("backward", "torch/_tensor.py", ("backward",)),
    ("optimizer", "torch/optim/optimizer.py", ("wrapper",)),
    ("video_decode", "vvkit/video.py", ("read_clip", "load_video", "decode")),
    ("prompt_encoding", "", ("_encode_rows", "encode_prompt")),
    ("vision_tower", "qwen2_5_vl/modeling_qwen2_5_vl.py", ("get_video_features",)),
)


def timed(fn, *args, **kw):
    """(fn(*args, **kw), seconds)."""
    t0 = time.perf_counter()
    return fn(*args, **kw), time.perf_counter() - t0


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def profile_grpo(params: dict, root: Path, data: Path, steps: int) -> dict:
    """cProfile `steps` GRPO steps of the grpo arm and bucket the time (seconds per step)."""
    out_dir = root / "profile"
    shutil.rmtree(out_dir, ignore_errors=True)
    cfg = S.arm_config(params, "grpo", params["run"].get("seed", 0), out_dir, data, {"max_steps": steps})
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    S.run_arm(cfg, "grpo")
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # (file, line, func) -> (cc, nc, tt, ct, callers)
    out = {"steps": steps, "wall_s": round(wall, 2), "per_step_s": {}}
    for name, frag, funcs in BUCKETS:
        ct = [v[3] for (f, _, fn), v in stats.items() if fn in funcs and frag in f.replace("\\", "/")]
        out["per_step_s"][name] = round(max(ct, default=0.0) / steps, 4)
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:25]  # by own time (tt)
    out["top_own_time"] = [{"func": f"{Path(f).name}:{ln}:{fn}", "own_s": round(v[2], 3), "cum_s": round(v[3], 3),
                            "calls": v[1]} for (f, ln, fn), v in top]
    return out


def start_summary(policy: Path) -> dict:
    """Where the start policy came from: the shipped start's manifest (steps, code version, its own held-out
    scores), or only the folder for a start built for this data."""
    if not (policy / START_MANIFEST).is_file():
        return {"folder": str(policy)}
    m = read_manifest(policy)
    return {"folder": os.path.relpath(policy, HERE.parent), "steps": m["recipe"]["steps"],
            "code_version": m.get("code_version"), "own_world_heldout": m.get("final")}


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


def fmt(task: str, v: dict) -> str:
    """One cell: the score with the real video and, in brackets, with a blank one."""
    if task in ("mixvid", "mcq", "open_ended"):
        return f"{100 * v['score']:.0f}% ({100 * v['blank']:.0f}%)"
    return f"{v['score']:.3f} ({v['blank']:.3f})"


def curves_png(out: str | Path) -> Path:
    """Where the RL arms' training curves go: beside the results file (study.json -> study_curves.png)."""
    return Path(out).with_name(Path(out).stem + "_curves.png")


def markdown(result: dict) -> str:
    """The per-seed table and the over-seeds summary of a results file, as docs/results.md shows them."""
    lines = ["| seed | arm | " + " | ".join(NAMES[t] for t in S.TASKS) + " | train s |",
             "|---|---|" + "---|" * len(S.TASKS) + "---|"]
    seen_start = False
    for r in result["runs"]:
        if r["arm"] == "start":
            if seen_start:
                continue
            seen_start = True
        seed = "all" if r["arm"] == "start" else r["seed"]
        lines.append(f"| {seed} | {r['arm']} | " + " | ".join(fmt(t, r["tasks"][t]) for t in S.TASKS)
                     + f" | {r['train_seconds']:.0f} |")
    table = S.seed_table(result["runs"]).round(3).reset_index()
    lines += ["", "| task | arm | seeds | mean | sd | min | max | blank | change from start |", "|---" * 9 + "|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {NAMES[row.task]} | {row.arm} | {row.seeds} | {row.mean:.3f} | {row.sd:.3f} | {row.min:.3f} | "
                     f"{row.max:.3f} | {row.blank:.3f} | {row.change:+.3f} |")
    return "\n".join(lines)


NAMES = {"dark_event": "DarkEventInfer", "mixvid": "MixVidQA", "mcq": "MCQ", "open_ended": "open-ended",
         "caption": "caption F1"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(HERE.parent / "params" / "default.yaml"), help="the study's params file")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(S.ARMS), choices=list(S.ARMS))
    ap.add_argument("--root", default=str(HERE / ".cache" / "study"))
    ap.add_argument("--out", default=str(HERE / "results" / "study.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="grpo_training keys over the params file, e.g. max_steps=40 learning_rate=4e-4")
    ap.add_argument("--profile-steps", type=int, default=6, help="cProfile this many GRPO steps (0 = skip)")
    ap.add_argument("--markdown", action="store_true", help="print the tables of --out and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())))
        return
    torch.set_num_threads(args.threads)
    t_start, load_start = time.perf_counter(), load()
    params, root = read_params(args.params), Path(args.root)
    params.setdefault("grpo_training", {}).update(parse_overrides(args.set))
    timings: dict = {}
    data, timings["data_s"] = timed(S.build_data, params, root)
    ecfg = stage_config(params, "analysis", run_dir=root, overrides={"progress": False})
    test = heldout_rows(load_rows(data / "test.jsonl"), ecfg.rows_per_task)
    base = S.arm_config(params, "grpo", args.seeds[0], root / "instruct_run", data)
    instruct, timings["instruct_s"] = timed(start_policy, base)
    profile = profile_grpo(params, root, data, args.profile_steps) if args.profile_steps > 0 else None
    judge = make_judge(**ecfg.reward_config().settings(str(root)))

    runs, start_cache = [], None
    for seed in args.seeds:
        seed_t0 = time.perf_counter()
        for arm in args.arms:
            t0 = time.perf_counter()
            if arm == "start":
                # the start policy is the same for every seed; its held-out scores are computed once
                if start_cache is None:
                    shutil.rmtree(root / "instruct_eval", ignore_errors=True)  # a fresh measurement, never resumed
                    start_cache = S.task_scores(str(instruct), test, ecfg, CONDITIONS, root / "instruct_eval", judge)
                tasks, train_s = start_cache, timings["instruct_s"]
            else:
                out = root / f"seed{seed}" / arm
                shutil.rmtree(out, ignore_errors=True)
                cfg = S.arm_config(params, arm, seed, out, data)
                policy, train_s = timed(S.run_arm, cfg, arm)
                tasks = S.task_scores(str(policy), test, ecfg, CONDITIONS, out / "eval", judge)
            rec = {"seed": seed, "arm": arm, "tasks": tasks, "train_seconds": round(train_s, 1),
                   "seconds": round(time.perf_counter() - t0, 1), "load": load()}
            if arm != "start":
                rec["curve"] = S.training_curve(policy)
            runs.append(rec)
            print(f"seed {seed} {arm:8s} " + "  ".join(f"{t} {v['score']:.3f} (blank {v['blank']:.3f})"
                                                     for t, v in tasks.items())
                  + f"  train {train_s:.0f} s, load {rec['load'][0]}", flush=True)
            atomic_write_json(args.out, {"seeds": args.seeds, "runs": runs, "status": "running"})
        timings[f"seed{seed}_s"] = round(time.perf_counter() - seed_t0, 1)
    timings["total_s"] = round(time.perf_counter() - t_start, 1)
    seed0 = [r for r in runs if r["seed"] == args.seeds[0] and r["arm"] in ("start", "grpo")]
    demo_s = timings["data_s"] + timings["instruct_s"] + sum(r["seconds"] for r in seed0)
    result = {
        "seeds": args.seeds,
        "demo_seconds": round(demo_s, 1),
        "demo_seconds_note": "data + instruct policy + the first seed's start evaluation, GRPO arm and its "
                             "evaluation (video and blank), as run by this benchmark (not `make demo` itself)",
        "runs": runs,
        "targets": {"dark_event_lift": DEI_LIFT, "mixvid_lift": MIX_LIFT, "max_drop": MAX_DROP,
                    "dark_event_max_drop": DEI_MAX_DROP, "blank_margin": BLANK_MARGIN},
        "checks": check(runs),
        "start": start_summary(instruct),
        "params": os.path.relpath(args.params, HERE.parent), "grpo_training_overrides": args.set, "conditions": list(CONDITIONS),
        "timings_s": timings,
        "grpo_step_profile": profile,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_start": load_start, "load_average_end": load()},
        "status": "done",
    }
    print(f"checks: {result['checks']}")
    print(f"-> {atomic_write_json(args.out, result)} (total {timings['total_s']:.0f} s, load {load_start} -> {load()})")
    if any(r["arm"] in ("grpo", "no_proxy") for r in runs):
        print(f"-> {save(S.plot_curves(args.out), curves_png(args.out))}")


if __name__ == "__main__":
    main()
