"""Benchmark of the rewards: completions per second for each reward on 10k toy-world completions.

Goals: rule rewards (format, mcq, keywords, repetition, rouge) >= 100k completions/s; the offline embedding judge
(dark_event, mixvid, caption, and the mixed `accuracy`) >= 1k/s on 2 CPU threads with batching and its cache.
The offline judge is timed twice: as configured (the toy-world lexicon decides the texts it reads completely) and
with `judge_lexicon=False`, where every answer goes through the embedding model (text outside the toy vocabulary).
Completions come in GRPO groups (8 per prompt, batches of 64, as TRL calls a reward): references repeat 8 times and
answers drawn from the toy world's vocabulary repeat as a policy's do, so the caches see realistic duplication
(reported). "cold" = every cache emptied first; "warm" = the same completions again (a second epoch).
Results go to benchmarks/results/rewards.json.

    .venv/bin/python benchmarks/bench_rewards.py [--n 10000] [--batch 64] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import vvkit.rewards as R  # noqa: E402
from vvkit.io import atomic_write_json  # noqa: E402
from vvkit.rewards import embedder, lexicon, parsing, rule  # noqa: E402
from vvkit.synth.toyworld import COLOURS, DIRECTIONS, dense_caption, vocabulary_sentences  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rewards.json"
GROUP = 8
RULE_GOAL, JUDGE_GOAL = 100_000, 1_000
SWAPS = (("moves", "slides"), ("The ", "A "), ("grows", "gets bigger"), ("rotates", "spins"), ("enters", "comes in"))
THINKS = ["I watch the shapes move.", "The first shape enters, then another moves.", "Looking at the frames in order.",
          "The black part hides one event.", "The clip about the {c} shape matters."]


def _think(rng) -> str:
    """Reasoning differs between samples (completions are nearly all unique), answers repeat as a policy's do."""
    return rng.choice(THINKS).format(c=rng.choice(list(COLOURS))) + f" Frame {int(rng.integers(1_000_000))} checked."


def _answer(ref: str, pool: list[str], rng) -> str:
    """A policy-like answer: often the reference, sometimes a paraphrase, another event, or a part of it."""
    u = rng.random()
    if u < 0.4:
        return ref
    if u < 0.6:
        a, b = SWAPS[int(rng.integers(len(SWAPS)))]
        return ref.replace(a, b)
    if u < 0.85:
        return pool[int(rng.integers(len(pool)))]
    return " ".join(ref.split()[:3]) + "."


def make_batch(task: str, n: int, seed: int = 0) -> tuple[list[str], dict]:
    """n completions in groups of GROUP per prompt, 10% without tags, with the dataset columns of `task`."""
    rng = np.random.default_rng(seed)
    events = vocabulary_sentences()
    comps, cols = [], {"solution": [], "problem_type": [], "options": [], "problem": []}
    for g in range(n // GROUP):
        if task == "mcq":
            opts = [f"{L}. {c}" for L, c in zip("ABCD", rng.choice(list(COLOURS), 4, replace=False))]
            sol, prob, pool = "ABCD"[int(rng.integers(4))], "What colour is the shape that enters first?", None
        elif task in ("mixvid", "open_ended"):
            opts, sol = None, str(rng.choice(list(DIRECTIONS) + list(COLOURS)))
            prob, pool = "Which way does the red square move?", list(DIRECTIONS) + list(COLOURS)
        elif task == "dark_event":
            opts, sol, prob, pool = None, events[int(rng.integers(len(events)))], "Infer the hidden event.", events
        else:  # caption: 3-5 events joined with connectives
            k = int(rng.integers(3, 6))
            opts, prob = None, "Describe this video in detail."
            sol = dense_caption([events[int(i)] for i in rng.integers(len(events), size=k)])
            pool = [dense_caption([events[int(i)] for i in rng.integers(len(events), size=k)]) for _ in range(4)]
        for _ in range(GROUP):
            if task == "mcq":
                ans = sol if rng.random() < 0.6 else str(rng.choice(["A", "B", "C", "D", "A or B", opts[0][3:]]))
            else:
                ans = _answer(sol, pool, rng)
            text = f"<think>{_think(rng)}</think><answer>{ans}</answer>" if rng.random() > 0.1 else ans
            comps.append(text)
            for key, v in (("solution", sol), ("problem_type", task), ("options", opts), ("problem", prob)):
                cols[key].append(v)
    return comps, cols


def clear_caches() -> None:
    """Empty every cache the rewards keep, so a timing is cold."""
    for f in (parsing.parse_completion, parsing._extract_choice_cached, parsing._gt_letter, rule.rouge_f,
              rule.keyword_score, rule._tokens, rule._stem, lexicon.facts):
        f.cache_clear()
    embedder._EMBEDDERS.clear()


def time_reward(fn, comps: list[str], cols: dict, batch: int) -> float:
    """Completions per second calling `fn` on consecutive batches, as TRL does each step."""
    t0 = time.perf_counter()
    for s in range(0, len(comps), batch):
        fn(comps[s : s + batch], **{k: v[s : s + batch] for k, v in cols.items()})
    return len(comps) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--only", default="", help="comma-separated reward names to time (default: all)")
    ap.add_argument("--skip-embeddings", action="store_true", help="leave out the embeddings-only timings")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    emb = {"judge_lexicon": False}  # the embedding path alone, as for text outside the toy vocabulary
    plan = [("format", "mcq", RULE_GOAL, {}), ("mcq", "mcq", RULE_GOAL, {}), ("keywords", "caption", RULE_GOAL, {}),
            ("repetition", "caption", RULE_GOAL, {}), ("rouge", "open_ended", RULE_GOAL, {}),
            ("rouge", "caption", RULE_GOAL, {}), ("open_ended", "open_ended", RULE_GOAL, {}),
            ("mixvid", "mixvid", JUDGE_GOAL, {}), ("dark_event", "dark_event", JUDGE_GOAL, {}),
            ("caption", "caption", JUDGE_GOAL, {}), ("accuracy", "mixed", JUDGE_GOAL, {}),
            ("mixvid", "mixvid", JUDGE_GOAL, emb), ("dark_event", "dark_event", JUDGE_GOAL, emb),
            ("caption", "caption", JUDGE_GOAL, emb), ("accuracy", "mixed", JUDGE_GOAL, emb)]
    data = {t: make_batch(t, args.n, seed=i) for i, t in enumerate(("mcq", "open_ended", "mixvid", "dark_event", "caption"))}
    parts = [make_batch(t, args.n // 5, seed=10 + i) for i, t in enumerate(data)]
    groups = [(k, g) for g in range(args.n // 5 // GROUP) for k in range(len(parts))]  # tasks alternate by group
    data["mixed"] = ([c for k, g in groups for c in parts[k][0][g * GROUP : (g + 1) * GROUP]],
                     {key: [v for k, g in groups for v in parts[k][1][key][g * GROUP : (g + 1) * GROUP]]
                      for key in parts[0][1]})
    dup = {t: {"unique_completions": len(set(c)) / len(c), "unique_answers":
               len({parsing.parse_completion(x).answer for x in c}) / len(c)} for t, (c, _) in data.items()}
    R.make_judge().embedder.encode(["load the weights before timing"])  # imports and weights: one-off, untimed
    rule.rouge_score("import the rouge package", "and nltk before timing")
    results = {}
    for name, task, goal, extra in plan:
        if (args.only and name not in args.only.split(",")) or (args.skip_embeddings and extra):
            continue
        fn = R.get_reward_funcs([name], **extra)[0]
        comps, cols = data[task]
        clear_caches()
        embedder.get_embedder()._load()  # weights loaded outside the timing; their cache starts empty
        cold = time_reward(fn, comps, cols, args.batch)
        warm = time_reward(fn, comps, cols, args.batch)
        key = f"{name} ({task}{', embeddings only' if extra else ''})"
        results[key] = {"cold_per_s": round(cold, 1), "warm_per_s": round(warm, 1), "goal_per_s": goal,
                        "meets_goal_cold": cold >= goal, "meets_goal_warm": warm >= goal}
        print(f"{key:44s} cold {cold:>10.0f}/s  warm {warm:>10.0f}/s  goal {goal}/s", flush=True)
    if (args.only or args.skip_embeddings) and args.out.exists():  # a partial rerun updates its own entries only
        import json

        results = {**json.loads(args.out.read_text())["results"], **results}
    atomic_write_json(args.out, {
        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads, "python": platform.python_version()},
        "args": vars(args), "group_size": GROUP, "duplication": dup, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
