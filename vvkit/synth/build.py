"""`build_dataset(cfg)`: the one call notebook 01 makes. It gathers source videos (rendered toy-world videos or an
annotation file), splits them into disjoint train/test videos, draws one task per sample from `task_mix` and writes
`<out>/train.jsonl`, `<out>/test.jsonl` (atomic), `<out>/videos.jsonl` (every source video with its events) and a
manifest with the config hash, so a second call with the same config returns at once. The paper's mixture is one
shuffled jsonl of four task types in natural proportions (§3); here the proportions are a parameter."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vvkit.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from vvkit.prompts import CAPTION_PROMPT, PROMPT_VERSION
from vvkit.schema import PROBLEM_TYPES, SPLITS, Row, save_rows
from vvkit.synth import questions as Q
from vvkit.synth.adapters import FORMATS, AnnotatedVideo, read_annotations
from vvkit.synth.dark_event import DarkEventSettings, make_dark_event_row
from vvkit.synth.mixvid import MixVidSettings, make_mixvid_row
from vvkit.synth.toyrender import render
from vvkit.synth.toyworld import DIFFICULTIES, ToyVideo, dense_caption, generate

SYNTH_VERSION = "1"  # bump when generation changes in a way the config does not show
NOT_HASHED = ("run_dir", "frames", "policy")  # settings that do not change the data


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)


def config_dict(cfg: Any) -> dict:
    """The config as a plain dict (a dataclass such as `SynthConfig`, or a dict)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def config_hash(cfg: Any) -> str:
    """Hash of every setting that shapes the data, plus the prompt and generator versions."""
    d = {k: v for k, v in config_dict(cfg).items() if k not in NOT_HASHED}
    d.update(prompt_version=PROMPT_VERSION, synth_version=SYNTH_VERSION)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_dir(cfg: Any) -> Path:
    """`<run_dir>/<out_dir>` (or `out_dir` itself when absolute)."""
    out = Path(_get(cfg, "out_dir", "data"))
    return out if out.is_absolute() else Path(_get(cfg, "run_dir", ".")) / out


def _check(cfg: Any) -> tuple[dict[str, float], tuple[str, ...]]:
    mix = dict(_get(cfg, "task_mix"))
    bad = sorted(set(mix) - set(PROBLEM_TYPES))
    if bad or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"task_mix {mix}: keys must be among {list(PROBLEM_TYPES)} (unknown: {bad}) with "
                         f"non-negative weights that sum above 0")
    diff = _get(cfg, "difficulty")
    if diff not in DIFFICULTIES:
        raise ValueError(f"difficulty {diff!r} unknown; use one of {list(DIFFICULTIES)}")
    families = tuple(_get(cfg, "families") or Q.DEFAULT_FAMILIES[diff])
    unknown = sorted(set(families) - set(Q.FAMILIES))
    if unknown:
        raise ValueError(f"families {unknown} unknown; use some of {list(Q.FAMILIES)}")
    if _get(cfg, "source") != "toyworld" and _get(cfg, "annotation_format") not in FORMATS:
        raise ValueError(f"source {_get(cfg, 'source')!r} is an annotation file: set annotation_format to one of "
                         f"{list(FORMATS)} and video_root to the folder of its videos")
    if not 0.0 <= _get(cfg, "test_fraction") < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {_get(cfg, 'test_fraction')}")
    return mix, families


def _toy_sources(cfg: Any, out: Path) -> tuple[list[AnnotatedVideo], dict[str, ToyVideo]]:
    """Render (or reuse, when the folder was made with the same config) `num_videos` toy videos."""
    from vvkit.video import write_video

    vdir = out / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    stamp, h = vdir / ".config_hash", config_hash(cfg)
    reuse = stamp.exists() and stamp.read_text().strip() == h
    atomic_write_text(stamp, h)
    videos, toys = [], {}
    for i in tqdm(range(int(_get(cfg, "num_videos"))), desc="toy world", leave=False):
        seed = int(np.random.SeedSequence([int(_get(cfg, "seed")), 1, i]).generate_state(1)[0])
        toy = generate(seed, _get(cfg, "difficulty"), _get(cfg, "size"), _get(cfg, "fps"),
                       _get(cfg, "min_duration"), _get(cfg, "max_duration"), _get(cfg, "texture"))
        vid, path = f"toy_{i:05d}", vdir / f"toy_{i:05d}.mp4"
        if not (reuse and path.exists()):
            write_video(render(toy), path, toy.fps)
        videos.append(toy.to_annotated(str(path.resolve()), vid))
        toys[vid] = toy
    return videos, toys


def split_videos(ids: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Video id -> 'train' | 'test', disjoint by construction (a seeded permutation; at least one test video when
    test_fraction > 0 and there are two or more videos)."""
    rng = np.random.default_rng([seed, 2])
    order = rng.permutation(len(ids))
    n_test = int(round(test_fraction * len(ids)))
    if test_fraction > 0 and len(ids) >= 2:
        n_test = min(max(n_test, 1), len(ids) - 1)
    test = {ids[j] for j in order[:n_test]}
    return {v: ("test" if v in test else "train") for v in ids}


def build_dataset(cfg: Any, force: bool = False) -> dict:
    """Write the dataset described by `cfg` (a `SynthConfig` or dict) and return its summary: rows per task and
    split, videos per split, tasks that could not be made for some videos, and whether the cache was used."""
    mix, families = _check(cfg)
    out = output_dir(cfg)
    h = config_hash(cfg)
    manifest = out / "manifest.json"
    if not force and manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("config_hash") == h and all((out / f"{s}.jsonl").exists() for s in SPLITS):
            return {**m["summary"], "cached": True}
    out.mkdir(parents=True, exist_ok=True)
    seed = int(_get(cfg, "seed"))

    # ---- source videos and the split ----
    toys: dict[str, ToyVideo] = {}
    if _get(cfg, "source") == "toyworld":
        videos, toys = _toy_sources(cfg, out)
        source, step = "toyworld", 1.0 / float(_get(cfg, "fps"))
    else:
        videos = read_annotations(_get(cfg, "source"), _get(cfg, "annotation_format"), _get(cfg, "video_root"))
        n = int(_get(cfg, "num_videos"))
        videos = videos[:n] if n > 0 else videos
        source, step = _get(cfg, "annotation_format"), None
    split_of = split_videos([v.id for v in videos], float(_get(cfg, "test_fraction")), seed)
    by_split = {s: [v for v in videos if split_of[v.id] == s] for s in SPLITS}

    dark = DarkEventSettings(min_event_s=_get(cfg, "dark_min_event_s"), max_share=_get(cfg, "dark_max_share"),
                             min_context_s=_get(cfg, "dark_min_context_s"))
    mixs = MixVidSettings(min_chunk_s=_get(cfg, "mix_min_chunk_s"), max_chunk_s=_get(cfg, "mix_max_chunk_s"))
    n_opt = int(_get(cfg, "num_options"))
    tasks = [t for t in PROBLEM_TYPES if mix.get(t, 0) > 0]
    weights = np.array([mix[t] for t in tasks], float)

    summary: dict[str, Any] = {"counts": {}, "videos": {}, "infeasible": {}, "config_hash": h, "out_dir": str(out)}
    for split in SPLITS:
        vids = by_split[split]
        pool = [e.caption for v in vids for e in v.events]

        def qa_for(v: AnnotatedVideo, until: float | None = None, rng=None) -> list[Q.QA]:
            rng = rng if rng is not None else np.random.default_rng([seed, 3, zlib.crc32(v.id.encode())])
            if v.id in toys:
                return Q.toy_qa(toys[v.id], until, pool, rng)
            return Q.event_qa(v.events, until, pool, rng)

        rows: list[Row] = []
        infeasible: Counter = Counter()
        for vi, v in enumerate(tqdm(vids, desc=f"{split} rows", leave=False)):
            for k in range(int(_get(cfg, "samples_per_video"))):
                rng = np.random.default_rng([seed, 4, SPLITS.index(split), vi, k])
                rid = f"{split}-{v.id}-{k}"
                w = weights.copy()
                row = None
                while row is None and w.sum() > 0:
                    t = int(rng.choice(len(tasks), p=w / w.sum()))
                    task = tasks[t]
                    row = _make(task, v, vids, vi, rng, rid, split, source, qa_for, families, dark, mixs, n_opt, step)
                    if row is None:
                        infeasible[task] += 1
                        w[t] = 0.0  # try another task for this sample, and count the miss
                if row is not None:
                    rows.append(row)
        save_rows(rows, out / f"{split}.jsonl")
        summary["counts"][split] = {t: sum(r.problem_type == t for r in rows) for t in PROBLEM_TYPES}
        summary["videos"][split] = len(vids)
        summary["infeasible"][split] = dict(infeasible)
    atomic_write_jsonl(out / "videos.jsonl", [
        {"id": v.id, "path": v.path, "split": split_of[v.id], "duration": v.duration,
         "events": [dataclasses.asdict(e) for e in v.events], **({"kinds": toys[v.id].kinds} if v.id in toys else {})}
        for v in videos])
    atomic_write_json(manifest, {"config_hash": h, "config": config_dict(cfg), "prompt_version": PROMPT_VERSION,
                                 "synth_version": SYNTH_VERSION, "summary": summary})
    return {**summary, "cached": False}


def _make(task: str, v: AnnotatedVideo, vids: list[AnnotatedVideo], vi: int, rng: np.random.Generator, rid: str,
          split: str, source: str, qa_for, families, dark: DarkEventSettings, mixs: MixVidSettings, n_opt: int,
          step: float | None) -> Row | None:
    """One row of `task` from video `v`, or None when this video cannot give that task."""
    meta = {"video_id": v.id, "duration": v.duration}
    if task in ("mcq", "open_ended"):
        qa = Q.pick(qa_for(v, None, rng), families, rng, mcq=task == "mcq", n_options=n_opt)
        if qa is None:
            return None
        meta.update(family=qa.family)
        if task == "mcq":
            question, options, letter = Q.to_mcq(qa, rng, n_opt)
            meta.update(answer_text=qa.answer)
            return Row(rid, v.path, question, letter, "mcq", options, None, source, split, meta)
        return Row(rid, v.path, qa.question, qa.open_answer, "open_ended", None, None, source, split, meta)
    if task == "caption":
        if not v.events:
            return None
        meta.update(num_events=len(v.events))
        return Row(rid, v.path, CAPTION_PROMPT, dense_caption([e.caption for e in v.events]), "caption", None,
                   None, source, split, meta)
    if task == "dark_event":
        return make_dark_event_row(v, rng, dark, rid, split, source)
    if task == "mixvid":
        others = [j for j in range(len(vids)) if j != vi]
        for j in rng.permutation(others)[:5]:  # a partner from the same split whose answer differs
            b = vids[int(j)]
            row = make_mixvid_row(v, b, lambda u: qa_for(v, u, rng), lambda u: qa_for(b, u, rng), rng, mixs, rid,
                                  families, split, source, step)
            if row is not None:
                return row
        return None
    raise ValueError(f"unknown task {task!r}")


def materialize(row: Row, out_path: str, fps: float | None = None) -> Path:
    """Write the row's edited video (black span or interleaved clips) as an mp4, for inspection or for tools that
    cannot apply edits lazily; training and evaluation read the edits lazily instead."""
    from vvkit.video import materialize as _materialize

    return _materialize(row.video, row.edits, out_path, fps=fps)
