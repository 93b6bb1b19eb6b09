"""`build_dataset(cfg)`: the one call notebook 01 makes. It gathers source videos (rendered toy-world videos or an
annotation file, split by the file's official subsets or at random), or imports the authors' released rows
(`source: vidbridge`), splits them into disjoint train/test videos, draws one task per sample from `task_mix` and writes
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
from vvkit.synth.adapters import FORMATS, AnnotatedVideo, load_annotations, steps_paragraph
from vvkit.synth.dark_event import DarkEventSettings, event_reasons, make_dark_event_row, nominal_times
from vvkit.synth.mixvid import (CUES, ClipQA, MixVidSettings, cut_clip, make_clip_mixvid_row, make_mixvid_row,
                                read_clip_qa, window)
from vvkit.synth.toyrender import render
from vvkit.synth.toyworld import DIFFICULTIES, ToyVideo, dense_caption, generate

SYNTH_VERSION = "3"  # bump when generation changes in a way the config does not show
NOT_HASHED = ("run_dir", "policy")  # settings that do not change the data (frames do: DarkEventInfer visibility)
SPLIT_MODES = ("auto", "official", "random")


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
    src = _get(cfg, "source")
    if src == "vidbridge":
        if not _get(cfg, "data_path") or not _get(cfg, "video_root"):
            raise ValueError("source 'vidbridge' needs data_path (VidBridge-R1_training_data.jsonl) and video_root "
                             "(the folder that replaces the authors' root)")
    elif src != "toyworld" and _get(cfg, "annotation_format") not in FORMATS:
        raise ValueError(f"source {src!r} is an annotation file: set annotation_format to one of "
                         f"{list(FORMATS)} and video_root to the folder of its videos")
    if _get(cfg, "split", "auto") not in SPLIT_MODES:
        raise ValueError(f"split {_get(cfg, 'split')!r} unknown; use one of {list(SPLIT_MODES)}")
    if _get(cfg, "mix_cue", "auto") not in CUES:
        raise ValueError(f"mix_cue {_get(cfg, 'mix_cue')!r} unknown; use one of {list(CUES)}")
    if int(_get(cfg, "min_dark_frames", 1)) < 0:
        raise ValueError("min_dark_frames must be >= 0 (0 = no visibility check)")
    clip_s = _get(cfg, "clip_s", None)
    if clip_s is not None and clip_s <= 0:
        raise ValueError(f"clip_s must be positive seconds or null, got {clip_s}")
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
    for i in tqdm(range(int(_get(cfg, "num_videos"))), desc="toy world"):
        seed = int(np.random.SeedSequence([int(_get(cfg, "seed")), 1, i]).generate_state(1)[0])
        toy = generate(seed, _get(cfg, "difficulty"), _get(cfg, "size"), _get(cfg, "fps"),
                       _get(cfg, "min_duration"), _get(cfg, "max_duration"), _get(cfg, "texture"))
        vid, path = f"toy_{i:05d}", vdir / f"toy_{i:05d}.mp4"
        if not (reuse and path.exists()):
            write_video(render(toy), path, toy.fps, crf=0)  # lossless: a rebuild decodes to the same pixels
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


def official_split(videos: list[AnnotatedVideo], mode: str, test_fraction: float,
                   seed: int) -> tuple[dict[str, str], str]:
    """Video id -> split, and how it was decided: the file's own subsets ('official'), a seeded permutation
    ('random'), or 'auto' = official when the file names both train and test videos, else random."""
    labels = {v.id: v.meta.get("official_split", "") for v in videos}
    have = set(labels.values())
    if mode == "official" or (mode == "auto" and {"train", "test"} <= have):
        unlabelled = [k for k, s in labels.items() if s not in SPLITS]
        if unlabelled:
            raise ValueError(f"split 'official': {len(unlabelled)} videos carry no official subset (e.g. "
                             f"{unlabelled[:3]}); use split: random")
        return labels, "official"
    how = "random" if mode == "random" else f"random (the file names only {sorted(have - {''}) or 'no'} subsets)"
    return split_videos([v.id for v in videos], test_fraction, seed), how


def _probe_times(path: str, policy: Any) -> np.ndarray:
    """Frame timestamps of a file as the training decoder sees them (one header probe, no decoding)."""
    from vvkit.decode import run_task

    return np.asarray(run_task(policy.timeout_s, path, "probe", path, policy.backend, True)["times"], float)


def _select_by_mix(rows: list[Row], mix: dict[str, float], n_max: int, seed: int) -> tuple[list[Row], dict]:
    """Keep rows of the tasks in `mix` in its proportions: the largest total the available rows allow (all of
    them when the mix equals the file's own counts, as the paper's 10,800), at most `n_max` (0 = no cap)."""
    want = {t: w for t, w in mix.items() if w > 0}
    by = {t: [r for r in rows if r.problem_type == t] for t in want}
    total_w = sum(want.values())
    cap = min((len(by[t]) * total_w / w for t, w in want.items()), default=0.0)
    if n_max > 0:
        cap = min(cap, float(n_max))
    rng = np.random.default_rng([seed, 5])
    keep: list[Row] = []
    counts = {}
    for t, w in want.items():
        k = min(len(by[t]), int(np.floor(cap * w / total_w + 1e-6)))
        idx = sorted(rng.permutation(len(by[t]))[:k])
        keep += [by[t][i] for i in idx]
        counts[t] = {"available": len(by[t]), "kept": k}
    return keep, counts


def _build_vidbridge(cfg: Any, mix: dict, out: Path, h: str) -> dict:
    """`source: vidbridge`: import the released rows, keep `task_mix` proportions, hold out `test_fraction`."""
    from vvkit.synth.importers import import_vidbridge

    rows, report = import_vidbridge(_get(cfg, "data_path"), _get(cfg, "video_root"), _get(cfg, "strip_prefix"),
                                    bool(_get(cfg, "strict", False)))
    seed = int(_get(cfg, "seed"))
    rows, selected = _select_by_mix(rows, mix, int(_get(cfg, "num_videos")), seed)
    split_of = split_videos([r.id for r in rows], float(_get(cfg, "test_fraction")), seed)
    summary: dict[str, Any] = {"counts": {}, "videos": {}, "infeasible": {}, "config_hash": h, "out_dir": str(out),
                               "import": report.to_dict(), "selected": selected, "split": "random"}
    for split in SPLITS:
        part = [dataclasses.replace(r, split=split) for r in rows if split_of[r.id] == split]
        save_rows(part, out / f"{split}.jsonl")
        summary["counts"][split] = {t: sum(r.problem_type == t for r in part) for t in PROBLEM_TYPES}
        summary["videos"][split] = len({p for r in part for p in r.paths})
        summary["infeasible"][split] = {}
    atomic_write_jsonl(out / "videos.jsonl", [])
    return summary


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

    if _get(cfg, "source") == "vidbridge":
        summary = _build_vidbridge(cfg, mix, out, h)
        atomic_write_json(manifest, {"config_hash": h, "config": config_dict(cfg), "prompt_version": PROMPT_VERSION,
                                     "synth_version": SYNTH_VERSION, "summary": summary})
        return {**summary, "cached": False}

    # ---- source videos and the split ----
    from vvkit.video import FramePolicy

    policy = FramePolicy.from_dict(dict(_get(cfg, "frames") or {}))
    toys: dict[str, ToyVideo] = {}
    read_report = None
    if _get(cfg, "source") == "toyworld":
        videos, toys = _toy_sources(cfg, out)
        source, step = "toyworld", 1.0 / float(_get(cfg, "fps"))
        split_of, split_how = split_videos([v.id for v in videos], float(_get(cfg, "test_fraction")), seed), "random"
    else:
        videos, read_report = load_annotations(_get(cfg, "source"), _get(cfg, "annotation_format"),
                                               _get(cfg, "video_root"), bool(_get(cfg, "strict", False)))
        n = int(_get(cfg, "num_videos"))
        videos = videos[:n] if n > 0 else videos
        source, step = _get(cfg, "annotation_format"), None
        split_of, split_how = official_split(videos, _get(cfg, "split", "auto"), float(_get(cfg, "test_fraction")),
                                             seed)
    by_split = {s: [v for v in videos if split_of[v.id] == s] for s in SPLITS}
    clips: dict[str, list[ClipQA]] = {s: [] for s in SPLITS}
    clip_problems: list[str] = []
    if _get(cfg, "mixvid_clips", ""):
        clips, clip_problems = _clip_sources(cfg, policy, seed)

    dark = DarkEventSettings(min_event_s=_get(cfg, "dark_min_event_s"), max_share=_get(cfg, "dark_max_share"),
                             min_context_s=_get(cfg, "dark_min_context_s"),
                             policy=policy if int(_get(cfg, "min_dark_frames", 1)) > 0 else None,
                             min_dark_frames=int(_get(cfg, "min_dark_frames", 1)))
    mixs = MixVidSettings(min_chunk_s=_get(cfg, "mix_min_chunk_s"), max_chunk_s=_get(cfg, "mix_max_chunk_s"),
                          clip_s=_get(cfg, "clip_s", 10.0),
                          cue=("position" if toys and _get(cfg, "mix_cue", "auto") == "auto"
                               else _get(cfg, "mix_cue", "auto")))
    n_opt = int(_get(cfg, "num_options"))
    tasks = [t for t in PROBLEM_TYPES if mix.get(t, 0) > 0]
    weights = np.array([mix[t] for t in tasks], float)
    times_cache: dict[str, np.ndarray | None] = {}
    dark_rejected: Counter = Counter()

    def frame_times(v: AnnotatedVideo) -> np.ndarray | None:
        """The file's frame times (toy: known fps; real: probed once); None = unreadable (counted)."""
        if v.id not in times_cache:
            if v.id in toys:
                times_cache[v.id] = nominal_times(v.duration, toys[v.id].fps)
            else:
                try:
                    times_cache[v.id] = _probe_times(v.path, policy)
                except Exception as e:  # a broken file: DarkEventInfer cannot check it, so it is not used
                    if _get(cfg, "strict", False):
                        raise
                    dark_rejected[f"unreadable video ({type(e).__name__})"] += 1
                    times_cache[v.id] = None
        return times_cache[v.id]

    def dark_row(v: AnnotatedVideo, rng, rid: str, split: str) -> Row | None:
        times = frame_times(v) if dark.policy is not None else None
        if dark.policy is not None and times is None:
            return None
        if times is not None and len(times) > 1 and times[-1] + (times[1] - times[0]) < v.duration - 1.0:
            # the file is shorter than its annotation: masks near the end would black out nothing
            v = dataclasses.replace(v, duration=float(times[-1] + (times[1] - times[0])),
                                    events=[e for e in v.events if e.end <= times[-1] + (times[1] - times[0])])
            dark_rejected["file shorter than annotated (events past its end not used)"] += 1
        row = make_dark_event_row(v, rng, dark, rid, split, source, times)
        if row is None:
            dark_rejected.update(r for r in event_reasons(v, dark, times) if r)
        return row

    summary: dict[str, Any] = {"counts": {}, "videos": {}, "infeasible": {}, "config_hash": h, "out_dir": str(out),
                               "split": split_how}
    if read_report is not None:
        summary["read_report"] = read_report.to_dict()
    if clip_problems:
        summary["clip_problems"] = clip_problems
    for split in SPLITS:
        vids = by_split[split]
        pool = [e.caption for v in vids for e in v.events]

        def qa_for(v: AnnotatedVideo, until: float | None = None, rng=None) -> list[Q.QA]:
            rng = rng if rng is not None else np.random.default_rng([seed, 3, zlib.crc32(v.id.encode())])
            if v.id in toys:
                return Q.toy_qa(toys[v.id], until, pool, rng)
            return sequential_qa(v.events, Q.event_qa(v.events, until, pool, rng))

        rows: list[Row] = []
        infeasible: Counter = Counter()
        for vi, v in enumerate(tqdm(vids, desc=f"{split} rows")):
            for k in range(int(_get(cfg, "samples_per_video"))):
                rng = np.random.default_rng([seed, 4, SPLITS.index(split), vi, k])
                rid = f"{split}-{v.id}-{k}"
                w = weights.copy()
                row = None
                while row is None and w.sum() > 0:
                    t = int(rng.choice(len(tasks), p=w / w.sum()))
                    task = tasks[t]
                    row = _make(task, v, vids, vi, rng, rid, split, source, qa_for, families, dark_row, mixs, n_opt,
                                step, clips[split], bool(toys))
                    if row is None:
                        infeasible[task] += 1
                        w[t] = 0.0  # try another task for this sample, and count the miss
                if row is not None:
                    rows.append(row)
        save_rows(rows, out / f"{split}.jsonl")
        summary["counts"][split] = {t: sum(r.problem_type == t for r in rows) for t in PROBLEM_TYPES}
        summary["videos"][split] = len(vids)
        summary["infeasible"][split] = dict(infeasible)
    summary["dark_rejected"] = dict(dark_rejected)
    atomic_write_jsonl(out / "videos.jsonl", [
        {"id": v.id, "path": v.path, "split": split_of[v.id], "duration": v.duration,
         "events": [dataclasses.asdict(e) for e in v.events], **({"kinds": toys[v.id].kinds} if v.id in toys else {})}
        for v in videos])
    atomic_write_json(manifest, {"config_hash": h, "config": config_dict(cfg), "prompt_version": PROMPT_VERSION,
                                 "synth_version": SYNTH_VERSION, "summary": summary})
    return {**summary, "cached": False}


def sequential_qa(events: list, qas: list[Q.QA]) -> list[Q.QA]:
    """Drop 'right before / after' questions whose two events overlap (ActivityNet events do): the answer would not
    happen before or after the named event. The named event's phrase is unique in the video (event_qa asks only
    those), its partner is its neighbour in start order."""
    phrases = [Q.phrase(e.caption) for e in events]
    out = []
    for qa in qas:
        if qa.family in ("after", "before"):
            named = [i for i, p in enumerate(phrases) if p and p in qa.question]
            named = max(named, key=lambda i: len(phrases[i]), default=None)
            j = None if named is None else named + (1 if qa.family == "after" else -1)
            if j is None or not 0 <= j < len(events) or (events[named].start < events[j].end - 1e-6
                                                         and events[j].start < events[named].end - 1e-6):
                continue
        out.append(qa)
    return out


def _clip_sources(cfg: Any, policy: Any, seed: int) -> tuple[dict[str, list[ClipQA]], list[str]]:
    """The MixVidQA clip list, split by its own `split` field or at random, with unknown durations probed."""
    clips, problems = read_clip_qa(_get(cfg, "mixvid_clips"), _get(cfg, "video_root") or None,
                                   bool(_get(cfg, "strict", False)))
    for c in clips:
        if c.length is None:
            try:
                t = _probe_times(c.video, policy)
                c.duration = float(t[-1] + (t[1] - t[0])) if len(t) > 1 else None
            except Exception as e:
                problems.append(f"{c.video}: could not read its duration ({type(e).__name__}: {e})")
    clips = [c for c in clips if c.length is not None]
    labelled = all(c.split in SPLITS for c in clips)
    split_of = ({c.id: c.split for c in clips} if labelled and clips
                else split_videos([c.id for c in clips], float(_get(cfg, "test_fraction")), seed))
    return {s: [c for c in clips if split_of[c.id] == s] for s in SPLITS}, problems


def _make(task: str, v: AnnotatedVideo, vids: list[AnnotatedVideo], vi: int, rng: np.random.Generator, rid: str,
          split: str, source: str, qa_for, families, dark_row, mixs: MixVidSettings, n_opt: int,
          step: float | None, clips: list[ClipQA], toy: bool) -> Row | None:
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
        captions = [e.caption for e in v.events]
        text = dense_caption(captions) if toy else steps_paragraph(captions)
        return Row(rid, v.path, CAPTION_PROMPT, text, "caption", None, None, source, split, meta)
    if task == "dark_event":
        return dark_row(v, rng, rid, split)
    if task == "mixvid":
        if clips:  # a clip list with its own QA (Kinetics-style)
            if len(clips) < 2:
                return None
            for _ in range(5):
                i, j = (int(x) for x in rng.choice(len(clips), 2, replace=False))
                row = make_clip_mixvid_row(clips[i], clips[j], rng, mixs, rid, split, "clips", step)
                if row is not None:
                    return row
            return None
        others = [j for j in range(len(vids)) if j != vi]
        for j in rng.permutation(others)[:5]:  # a partner from the same split whose answer differs
            b = vids[int(j)]
            # each source cut to a clip first (toy-world questions are defined from t = 0, so toys start there)
            (sa, la), (sb, lb) = (cut_clip(x.duration, mixs.clip_s, rng, not toy, step) for x in (v, b))
            wa, wb = window(v, sa, la), window(b, sb, lb)
            row = make_mixvid_row(wa, wb, lambda u: qa_for(wa, u, rng), lambda u: qa_for(wb, u, rng), rng, mixs,
                                  rid, families, split, source, step, (sa, sb))
            if row is not None:
                return row
        return None
    raise ValueError(f"unknown task {task!r}")


def materialize_row(row: Row, out_path: str, fps: float | None = None) -> Path:
    """Write the row's edited video (black span or interleaved clips) as an mp4, for inspection or for tools that
    cannot apply edits lazily; training and evaluation read the edits lazily instead."""
    from vvkit.video import materialize as _materialize

    return _materialize(row.video, row.edits, out_path, fps=fps)
