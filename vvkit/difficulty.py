"""The difficulty filter (paper §3): before RL, sample k completions per row (k=5 at T=1) and drop the rows that
teach nothing, since a group whose rewards are all equal has zero advantage:

- a non-caption row is dropped when all k completions are correct;
- a caption row is dropped when its AutoDQ F1 barely varies across the k completions: the population standard
  deviation of the k F1 scores is below `caption_spread` (paper: 0.2).

Why a standard deviation: the paper calls the statistic a "variance" with threshold 0.2, but F1 lies in [0, 1], where
a variance reaches 0.25 only when half the samples score 0 and half 1, so 0.2 would drop nearly every caption; as a
standard deviation (at most 0.5) 0.2 keeps the captions whose scores really spread, which is the stated purpose.

Sampling goes through the one generation loop (`vvkit.rollout`), scoring through the evaluation scorer (the rewards'
parser and judges). In a run of several processes the filter runs once, on the main process (on its accelerator, in
bf16 when the run is bf16), and the kept rows are broadcast, so every rank trains on the same list; a run that finds
the filtered rows of the same settings (`<output_dir>/train_filtered.jsonl` + `difficulty.json`) reuses them.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from vvkit.rollout import sample_rows
from vvkit.schema import Row

FILTERED_FILE = "train_filtered.jsonl"
SETTINGS_FILE = "difficulty.json"


def is_correct(text: str, row: Row, judge: Any = None, **settings: Any) -> bool:
    """Whether a completion answers the row correctly, by the evaluation scorer (same parser and judges as rewards)."""
    from vvkit.rewards import score_completion

    return bool(score_completion(text, row.to_dict(), judge, **settings)["correct"])


def caption_f1(text: str, row: Row, judge: Any = None, **settings: Any) -> float:
    """AutoDQ F1 of a caption completion (0 when malformed), by the evaluation scorer."""
    from vvkit.rewards import score_completion

    return float(score_completion(text, row.to_dict(), judge, **settings).get("f1") or 0.0)


def spread(values: Sequence[float]) -> float:
    """Population standard deviation: the caption rule's statistic (module docstring says why not a variance)."""
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def filter_by_difficulty(policy: Any, rows: Sequence[Row], k: int = 5, temperature: float = 1.0,
                         frames: dict | None = None, judge: Any = None, max_new_tokens: int = 64,
                         correct: Callable[[str, Row], bool] | None = None, caption_spread: float = 0.2,
                         f1: Callable[[str, Row], float] | None = None, dtype: Any = None,
                         device: Any = None) -> list[Row]:
    """Sample k completions per row; keep non-caption rows where fewer than k are correct and caption rows whose
    F1 standard deviation is >= `caption_spread` (0 keeps every caption). `policy` is a folder (loaded in `dtype`
    on `device`) or a (model, processor) pair; `correct(text, row)` and `f1(text, row)` default to the evaluation
    scorer. Kept rows carry `meta['difficulty']` ({k, correct} or {k, f1_std})."""
    from vvkit.model import load_policy

    model, processor = (load_policy(policy, dtype=dtype, device=device) if isinstance(policy, (str, Path))
                        else policy)
    samples = sample_rows(model, processor, rows, frames, n=k, temperature=temperature, max_new_tokens=max_new_tokens)
    check = correct or (lambda text, row: is_correct(text, row, judge))
    score = f1 or (lambda text, row: caption_f1(text, row, judge))
    kept = []
    for row, texts in zip(rows, samples):
        if row.problem_type == "caption":
            std = spread([float(score(t, row)) for t in texts])
            if std >= caption_spread:
                row.meta = {**row.meta, "difficulty": {"k": k, "f1_std": round(std, 6)}}
                kept.append(row)
            continue
        n_correct = sum(bool(check(t, row)) for t in texts)
        if n_correct < k:
            row.meta = {**row.meta, "difficulty": {"k": k, "correct": n_correct}}
            kept.append(row)
    return kept


def filter_settings(cfg: Any, policy: Path, rows: Sequence[Row]) -> dict:
    """What the filter's result depends on: a saved result with other settings is recomputed, never reused."""
    digest = hashlib.sha256(json.dumps([r.to_dict() for r in rows], sort_keys=True, default=str).encode())
    return {"k": cfg.difficulty_filter_k, "temperature": cfg.difficulty_filter_temperature,
            "caption_spread": cfg.difficulty_caption_spread, "caption_spread_kind": "population std of AutoDQ F1",
            "max_new_tokens": cfg.max_completion_length, "frames": cfg.frames, "seed": cfg.seed, "bf16": bool(cfg.bf16),
            "policy": str(policy), "rewards": cfg.reward_config().settings(cfg.run_dir),
            "rows_sha256": digest.hexdigest()[:16]}


def filtered_rows(cfg: Any, policy: Path, rows: Sequence[Row], judge_factory: Callable[[], Any]) -> list[Row]:
    """The difficulty-filtered training rows for a run: computed once on the main process (or reused from
    `<output_dir>/train_filtered.jsonl` when `difficulty.json` holds the same settings) and broadcast to the other
    processes, so every rank sees the same rows in the same order."""
    import torch
    from accelerate.utils import broadcast_object_list

    from vvkit.io import atomic_write_json
    from vvkit.schema import load_rows, save_rows
    from vvkit.train import process_state

    state = process_state(cfg)
    records: list[dict] | None = None
    if state.is_main_process:
        out = Path(cfg.output_dir)
        settings = json.loads(json.dumps(filter_settings(cfg, policy, rows), default=str))
        marker, saved = out / SETTINGS_FILE, out / FILTERED_FILE
        if marker.is_file() and saved.is_file() and json.loads(marker.read_text()).get("settings") == settings:
            kept = load_rows(saved)
            print(f"[vvkit] difficulty filter: reusing {saved} ({len(kept)} of {len(rows)} rows, same settings)")
        else:
            torch.manual_seed(cfg.seed)
            kept = filter_by_difficulty(
                str(policy), [Row(**r.to_dict()) for r in rows], k=cfg.difficulty_filter_k, frames=cfg.frames,
                temperature=cfg.difficulty_filter_temperature, judge=judge_factory(),
                max_new_tokens=cfg.max_completion_length, caption_spread=cfg.difficulty_caption_spread,
                dtype=torch.bfloat16 if cfg.bf16 else torch.float32, device=state.device)
            save_rows(kept, saved)
            atomic_write_json(marker, {"settings": settings, "kept": len(kept), "of": len(rows)})
            print(f"[vvkit] difficulty filter: kept {len(kept)} of {len(rows)} rows -> {saved}")
        records = [r.to_dict() for r in kept]
    if state.num_processes > 1:
        box = [records]
        broadcast_object_list(box, from_process=0)
        records = box[0]
    return [Row(**r) for r in records]
