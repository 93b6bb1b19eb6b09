"""Which rows train what: the run's splits, the instruct stage's rows, the RL mix per task and the held-out rows
(the paper's §3-§6 in miniature splits training videos in two halves: instruct on one, RL on the other)."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vvkit.prompts import row_to_messages
from vvkit.rundir import RunDir
from vvkit.schema import TASKS, Row, load_rows, to_dataset

PROXY_TASKS = ("dark_event", "mixvid")
INSTRUCT_TASKS = ("mcq", "open_ended", "caption")  # single clips, no edits: what an instruct model already does


# ---- the run's splits ---------------------------------------------------------------------------------------------
def load_split(cfg: Any, split: str = "train") -> list[Row]:
    """Rows of `train_data` / `eval_data` (default <run_dir>/data/{train,test}.jsonl), validated."""
    given = cfg.train_data if split == "train" else cfg.eval_data
    path = Path(given or RunDir(cfg.run_dir).rows("train" if split == "train" else "test"))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {split} rows. Build them with notebook 01 (`vvkit run --only 1`) or set "
                                f"grpo_training.{'train' if split == 'train' else 'eval'}_data to a rows JSONL")
    rows = load_rows(path)
    return rows[: cfg.max_train_rows] if split == "train" and cfg.max_train_rows else rows


def grpo_dataset(rows: Sequence[Row]) -> Any:
    """Rows as a `datasets.Dataset` with TRL's `prompt` column (chat messages) next to the schema columns."""
    return to_dataset(list(rows)).add_column("prompt", [row_to_messages(r) for r in rows])


# ---- which videos train what --------------------------------------------------------------------------------------
def video_of(row: Row) -> str:
    """The source video a row is made from (the first clip of a MixVidQA pair)."""
    return str(row.meta.get("video_id") or (row.meta.get("video_ids") or [row.id])[0])


def pretraining_videos(row: Row) -> bool:
    """Train videos split in two halves by a stable hash: one half for the instruct stage, the other for RL, so RL
    prompts (and the MixVidQA pairs' first clips) come from videos the instruct policy never trained on."""
    return int(hashlib.sha256(video_of(row).encode()).hexdigest(), 16) % 2 == 0


def with_reasoning(rows: Sequence[Row], reasoning: str | None) -> list[Row]:
    """Copies whose supervised target thinks `reasoning` (`sft_target` reads `meta['reasoning']`); None = as is."""
    if reasoning is None:
        return list(rows)
    return [dataclasses.replace(r, meta={**r.meta, "reasoning": reasoning}) for r in rows]


def instruct_rows(train: Sequence[Row], reasoning: str | None) -> list[Row]:
    """The instruct stage's rows: captions and QA on single unedited clips of the pre-training half."""
    rows = [r for r in train if r.problem_type in INSTRUCT_TASKS and not r.edits and pretraining_videos(r)]
    return with_reasoning(rows, reasoning)


# ---- the RL rows --------------------------------------------------------------------------------------------------
def no_proxy_mix(mix: dict[str, int]) -> dict[str, int]:
    """The no-proxy control's mix (paper §6's "VideoQA+Caption" ablation at equal size): the DarkEventInfer and
    MixVidQA rows given half to extra multiple-choice and half to extra caption rows."""
    counts = {t: int(mix.get(t, 0)) for t in TASKS}
    freed = sum(counts[t] for t in PROXY_TASKS)
    counts["mcq"] += freed - freed // 2
    counts["caption"] += freed // 2
    return {**counts, **{t: 0 for t in PROXY_TASKS}}


def mixed_rows(rows: Sequence[Row], mix: dict[str, int], seed: int) -> list[Row]:
    """`mix[task]` rows of each task, drawn and shuffled by `seed`; raises naming the task the rows lack."""
    pool = {t: [r for r in rows if r.problem_type == t] for t in TASKS}
    unknown = sorted(set(mix) - set(TASKS))
    if unknown:
        raise ValueError(f"grpo_training.train_mix: unknown task(s) {unknown}; tasks are {list(TASKS)}")
    rng = np.random.default_rng([seed, 11])
    order = {t: [pool[t][j] for j in rng.permutation(len(pool[t]))] for t in TASKS}
    counts = {t: int(mix.get(t, 0)) for t in TASKS}
    short = {t: (n, len(order[t])) for t, n in counts.items() if n > len(order[t])}
    if short:
        raise ValueError(f"grpo_training.train_mix asks for more rows than there are: (wanted, available) {short}; "
                         "raise data_synthesis.num_videos or samples_per_video, or lower train_mix")
    picked = [r for t in TASKS for r in order[t][: counts[t]]]
    return [picked[j] for j in rng.permutation(len(picked))]


def rl_rows(cfg: Any, train: Sequence[Row]) -> list[Row]:
    """GRPO's rows: with an instruct start, only the RL half of the videos; then `train_mix` rows per task."""
    rows = [r for r in train if not pretraining_videos(r)] if cfg.instruct_steps > 0 else list(train)
    return mixed_rows(rows, cfg.train_mix, cfg.seed) if cfg.train_mix else rows


def heldout_rows(test: Sequence[Row], per_task: int | None) -> list[Row]:
    """The first `per_task` held-out rows of every task present (None = all rows); test videos are never trained on."""
    if per_task is None:
        return list(test)
    out: list[Row] = []
    for t in TASKS:
        got = [r for r in test if r.problem_type == t]
        if got and len(got) < per_task:
            raise ValueError(f"only {len(got)} held-out {t} rows for analysis.rows_per_task={per_task}; raise "
                             "data_synthesis.num_videos")
        out += got[:per_task]
    return out
