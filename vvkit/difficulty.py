"""The difficulty filter (paper §3): before RL, sample k completions per row (k=5 at T=1) and drop the rows that
teach nothing, since a group whose rewards are all equal has zero advantage:

- a non-caption row is dropped when all k completions are correct;
- a caption row is dropped when its AutoDQ F1 barely varies across the k completions: the population standard
  deviation of the k F1 scores is below `caption_spread` (paper: 0.2).

Why a standard deviation: the paper calls the statistic a "variance" with threshold 0.2, but F1 lies in [0, 1], where
a variance reaches 0.25 only when half the samples score 0 and half 1, so 0.2 would drop nearly every caption; as a
standard deviation (at most 0.5) 0.2 keeps the captions whose scores really spread, which is the stated purpose.

Sampling and scoring go through `vvkit.evaluate.sample_and_score` with the run's reward settings, a few rows at a time
(rows are encoded as they are needed, never all up front). The filter is a distributed stage: under `torchrun` or
`accelerate launch` every rank loads the start policy whole (outside DeepSpeed ZeRO-3's partitioned init, which would
issue collectives that ranks with other work never join), samples its own shard of the rows, and the kept rows are
gathered in the original order, so every rank trains on the same list. A run that finds the filtered rows of the
same settings (`<output_dir>/train_filtered.jsonl` + `difficulty.json`) reuses them.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any, Sequence

import torch

from vvkit.dist import process_state, whole_model_init
from vvkit.evaluate import sample_and_score
from vvkit.io import atomic_write_json
from vvkit.model import load_policy
from vvkit.rewards import RewardConfig, make_judge
from vvkit.schema import Row, load_rows, save_rows

FILTERED_FILE = "train_filtered.jsonl"
SETTINGS_FILE = "difficulty.json"


def spread(values: Sequence[float]) -> float:
    """Population standard deviation: the caption rule's statistic (module docstring says why not a variance)."""
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def verdict(row: Row, scored: Sequence[dict], caption_spread: float) -> dict | None:
    """`meta['difficulty']` of a row worth keeping given its k scored completions, or None to drop it."""
    k = len(scored)
    if row.problem_type == "caption":
        std = spread([float(s.get("f1") or 0.0) for s in scored])
        return {"k": k, "f1_std": round(std, 6)} if std >= caption_spread else None
    n_correct = sum(bool(s["correct"]) for s in scored)
    return {"k": k, "correct": n_correct} if n_correct < k else None


def filter_by_difficulty(model: Any, processor: Any, rows: Sequence[Row], rewards: RewardConfig | dict,
                         frames: dict, *, k: int, temperature: float, max_new_tokens: int, caption_spread: float,
                         judge: Any = None, batch_size: int = 8) -> list[Row]:
    """Sample k completions per row, score them with the run's `rewards`, keep the rows `verdict` keeps (with
    `meta['difficulty']`: {k, correct} or {k, f1_std}); `batch_size` rows are encoded and sampled at a time. The
    settings have no defaults here: they are the run's (`TrainConfig.difficulty_*`, paper: k=5 at T=1, 0.2)."""
    kept = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        groups = sample_and_score(model, processor, chunk, rewards, frames, n=k, temperature=temperature,
                                  max_new_tokens=max_new_tokens, judge=judge, batch_size=batch_size)
        for row, scored in zip(chunk, groups):
            v = verdict(row, scored, caption_spread)
            if v is not None:
                row.meta = {**row.meta, "difficulty": v}
                kept.append(row)
    return kept


def filter_settings(cfg: Any, policy: Path, rows: Sequence[Row]) -> dict:
    """What the filter's result depends on: a saved result with other settings is recomputed, never reused. The
    process count is part of it (each rank samples its shard with its own seed)."""
    digest = hashlib.sha256(json.dumps([r.to_dict() for r in rows], sort_keys=True, default=str).encode())
    rewards = cfg.reward_config().settings()
    return {"k": cfg.difficulty_filter_k, "temperature": cfg.difficulty_filter_temperature,
            "caption_spread": cfg.difficulty_caption_spread, "caption_spread_kind": "population std of AutoDQ F1",
            "max_new_tokens": cfg.max_completion_length, "frames": cfg.frames, "seed": cfg.seed, "bf16": bool(cfg.bf16),
            "policy": str(policy), "rewards": {k: v for k, v in rewards.items() if k != "judge_cache"},
            "processes": int(process_state(cfg).num_processes), "rows_sha256": digest.hexdigest()[:16]}


def _saved(cfg: Any, settings: dict) -> list[Row] | None:
    out = Path(cfg.output_dir)
    marker, saved = out / SETTINGS_FILE, out / FILTERED_FILE
    if marker.is_file() and saved.is_file() and json.loads(marker.read_text()).get("settings") == settings:
        return load_rows(saved)
    return None


def filtered_rows(cfg: Any, policy: Path, rows: Sequence[Row]) -> list[Row]:
    """The difficulty-filtered training rows of a run, computed by every process on its shard (`rows[rank::world]`)
    and gathered in the original order, or reused from `<output_dir>/train_filtered.jsonl` when `difficulty.json`
    holds the same settings. Every process returns the same list."""
    from accelerate.utils import broadcast_object_list, gather_object

    state = process_state(cfg)
    settings = json.loads(json.dumps(filter_settings(cfg, policy, rows), default=str))
    box = [None]
    if state.is_main_process:
        reused = _saved(cfg, settings)
        box = [None if reused is None else [r.to_dict() for r in reused]]
    if state.num_processes > 1:
        broadcast_object_list(box, from_process=0)
    if box[0] is not None:
        print(f"[vvkit] difficulty filter: reusing {Path(cfg.output_dir) / FILTERED_FILE} ({len(box[0])} of "
              f"{len(rows)} rows, same settings)")
        return [Row(**r) for r in box[0]]

    rank, world = state.process_index, state.num_processes
    mine = list(range(rank, len(rows), world))
    torch.manual_seed(cfg.seed + rank)
    with whole_model_init():  # a whole copy per process: no ZeRO-3 collectives while shards differ in length
        model, processor = load_policy(policy, dtype=torch.bfloat16 if cfg.bf16 else torch.float32,
                                       device=state.device)
    kept = filter_by_difficulty(model, processor, [Row(**rows[i].to_dict()) for i in mine], cfg.reward_config(),
                                cfg.frames, k=cfg.difficulty_filter_k, temperature=cfg.difficulty_filter_temperature,
                                max_new_tokens=cfg.max_completion_length, caption_spread=cfg.difficulty_caption_spread,
                                judge=make_judge(**cfg.reward_config().settings(cfg.run_dir)))
    del model
    index = {rows[i].id: i for i in mine}
    pairs = [(index[r.id], r.to_dict()) for r in kept]
    if world > 1:
        pairs = gather_object(pairs)
    kept_all = [Row(**d) for _, d in sorted(pairs, key=lambda p: p[0])]
    if state.is_main_process:
        out = Path(cfg.output_dir)
        save_rows(kept_all, out / FILTERED_FILE)
        atomic_write_json(out / SETTINGS_FILE, {"settings": settings, "kept": len(kept_all), "of": len(rows)})
        print(f"[vvkit] difficulty filter: kept {len(kept_all)} of {len(rows)} rows over {world} process(es) -> "
              f"{out / FILTERED_FILE}")
    state.wait_for_everyone()
    return kept_all
