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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from vvkit.io import atomic_write_json, atomic_write_jsonl
from vvkit.prompts import CAPTION_PROMPT, PROMPT_VERSION
from vvkit.schema import SPLITS, TASKS, Row, save_rows
from vvkit.synth import questions as Q
from vvkit.synth.adapters import FORMATS, AnnotatedVideo, steps_paragraph
from vvkit.synth.dark_event import DarkEventSettings, event_reasons, make_dark_event_row, nominal_times
from vvkit.synth.mixvid import CUES, ClipQA, MixVidSettings, cut_clip, make_clip_mixvid_row, make_mixvid_row, window
from vvkit.synth.sources import Sources, clip_sources, gather_sources, probe_times, split_videos
from vvkit.synth.toyworld import DIFFICULTIES, dense_caption

if TYPE_CHECKING:  # annotations only: the stage configs sit above the data path
    from vvkit.config import SynthConfig
    from vvkit.video import FramePolicy

SYNTH_VERSION = "3"  # bump when generation changes in a way the config does not show
# The order version 3 draws tasks in (a sample's task is an index into it) and counts them in the manifest; it moves
# only with SYNTH_VERSION, since any other order changes every dataset. Tables and loops use `vvkit.schema.TASKS`.
DRAW_ORDER = ("mcq", "open_ended", "caption", "dark_event", "mixvid")
NOT_HASHED = ("run_dir", "policy")  # settings that do not change the data (frames do: DarkEventInfer visibility)
SPLIT_MODES = ("auto", "official", "random")
# Why a reader dropped an event (vvkit.synth.adapters), as the skipped-records line names it.
SEGMENT_REASONS = {"zero length": "zero-length segment", "malformed segment": "malformed segment",
                   "start after end": "segment ending before it starts", "empty caption": "segment without caption",
                   "starts at or after the video's end": "segment past the video's end"}


# ---- the config ----


def config_dict(cfg: SynthConfig) -> dict:
    """The config as a plain dict (recorded in the manifest)."""
    return dataclasses.asdict(cfg)


def config_hash(cfg: SynthConfig) -> str:
    """Hash of every setting that shapes the data, plus the prompt and generator versions."""
    d = {k: v for k, v in config_dict(cfg).items() if k not in NOT_HASHED}
    d.update(prompt_version=PROMPT_VERSION, synth_version=SYNTH_VERSION)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_dir(cfg: SynthConfig) -> Path:
    """`<run_dir>/<out_dir>` (or `out_dir` itself when absolute)."""
    out = Path(cfg.out_dir)
    return out if out.is_absolute() else Path(cfg.run_dir) / out


def _check(cfg: SynthConfig) -> tuple[dict[str, float], tuple[str, ...]]:
    """The task mix and the question families, after every setting the config's types cannot check."""
    mix = dict(cfg.task_mix)
    bad = sorted(set(mix) - set(TASKS))
    if bad or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"task_mix {mix}: keys must be among {list(TASKS)} (unknown: {bad}) with "
                         f"non-negative weights that sum above 0")
    if cfg.difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty {cfg.difficulty!r} unknown; use one of {list(DIFFICULTIES)}")
    families = tuple(cfg.families or Q.DEFAULT_FAMILIES[cfg.difficulty])
    unknown = sorted(set(families) - set(Q.FAMILIES))
    if unknown:
        raise ValueError(f"families {unknown} unknown; use some of {list(Q.FAMILIES)}")
    if cfg.source == "vidbridge":
        if not cfg.data_path or not cfg.video_root:
            raise ValueError("source 'vidbridge' needs data_path (VidBridge-R1_training_data.jsonl) and video_root "
                             "(the folder that replaces the authors' root)")
    elif cfg.source != "toyworld" and cfg.annotation_format not in FORMATS:
        raise ValueError(f"source {cfg.source!r} is an annotation file: set annotation_format to one of "
                         f"{list(FORMATS)} and video_root to the folder of its videos")
    if cfg.split not in SPLIT_MODES:
        raise ValueError(f"split {cfg.split!r} unknown; use one of {list(SPLIT_MODES)}")
    if cfg.mix_cue not in CUES:
        raise ValueError(f"mix_cue {cfg.mix_cue!r} unknown; use one of {list(CUES)}")
    if cfg.min_dark_frames < 0:
        raise ValueError("min_dark_frames must be >= 0 (0 = no visibility check)")
    if cfg.clip_s is not None and cfg.clip_s <= 0:
        raise ValueError(f"clip_s must be positive seconds or null, got {cfg.clip_s}")
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {cfg.test_fraction}")
    return mix, families


# ---- one row per sample ----


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


@dataclass
class RowMaker:
    """Draws each sample's task from the mix and makes its row; the settings every row of a build shares, and the
    reasons DarkEventInfer turned videos down."""

    sources: Sources
    mix: dict[str, float]
    families: tuple[str, ...]
    num_options: int
    samples_per_video: int
    seed: int
    strict: bool
    policy: FramePolicy
    dark: DarkEventSettings
    mixvid: MixVidSettings
    dark_rejected: Counter = field(default_factory=Counter)
    _times: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, cfg: SynthConfig, mix: dict[str, float], families: tuple[str, ...], sources: Sources,
                    policy: FramePolicy) -> RowMaker:
        dark = DarkEventSettings(min_event_s=cfg.dark_min_event_s, max_share=cfg.dark_max_share,
                                 min_context_s=cfg.dark_min_context_s,
                                 policy=policy if cfg.min_dark_frames > 0 else None,
                                 min_dark_frames=cfg.min_dark_frames)
        cue = "position" if sources.toys and cfg.mix_cue == "auto" else cfg.mix_cue  # toy questions name no clip
        mixvid = MixVidSettings(min_chunk_s=cfg.mix_min_chunk_s, max_chunk_s=cfg.mix_max_chunk_s, clip_s=cfg.clip_s,
                                cue=cue)
        return cls(sources, mix, families, cfg.num_options, cfg.samples_per_video, cfg.seed, cfg.strict, policy,
                   dark, mixvid)

    def split_rows(self, split: str, clips: list[ClipQA]) -> tuple[list[Row], Counter]:
        """`samples_per_video` rows per video of `split`, and how often each task could not be made."""
        vids = self.sources.of_split(split)
        pool = [e.caption for v in vids for e in v.events]  # distractor answers come from the same split
        tasks = [t for t in DRAW_ORDER if self.mix.get(t, 0) > 0]
        weights = np.array([self.mix[t] for t in tasks], float)
        rows: list[Row] = []
        infeasible: Counter = Counter()
        for vi, v in enumerate(tqdm(vids, desc=f"{split} rows")):
            for k in range(self.samples_per_video):
                rng = np.random.default_rng([self.seed, 4, SPLITS.index(split), vi, k])
                rid = f"{split}-{v.id}-{k}"
                w = weights.copy()
                row = None
                while row is None and w.sum() > 0:
                    t = int(rng.choice(len(tasks), p=w / w.sum()))
                    row = self.make(tasks[t], vids, vi, rng, rid, split, pool, clips)
                    if row is None:
                        infeasible[tasks[t]] += 1
                        w[t] = 0.0  # try another task for this sample, and count the miss
                if row is not None:
                    rows.append(row)
        return rows, infeasible

    def make(self, task: str, vids: list[AnnotatedVideo], vi: int, rng: np.random.Generator, rid: str, split: str,
             pool: list[str], clips: list[ClipQA]) -> Row | None:
        """One row of `task` from video `vids[vi]`, or None when this video cannot give that task."""
        v, source = vids[vi], self.sources.source
        meta = {"video_id": v.id, "duration": v.duration}
        if task in ("mcq", "open_ended"):
            qa = Q.pick(self.qas(v, None, pool, rng), self.families, rng, mcq=task == "mcq",
                        n_options=self.num_options)
            if qa is None:
                return None
            meta.update(family=qa.family)
            if task == "mcq":
                question, options, letter = Q.to_mcq(qa, rng, self.num_options)
                meta.update(answer_text=qa.answer)
                return Row(rid, v.path, question, letter, "mcq", options, None, source, split, meta)
            return Row(rid, v.path, qa.question, qa.open_answer, "open_ended", None, None, source, split, meta)
        if task == "caption":
            if not v.events:
                return None
            meta.update(num_events=len(v.events))
            captions = [e.caption for e in v.events]
            text = dense_caption(captions) if self.sources.toys else steps_paragraph(captions)
            return Row(rid, v.path, CAPTION_PROMPT, text, "caption", None, None, source, split, meta)
        if task == "dark_event":
            return self.dark_row(v, rng, rid, split)
        if task == "mixvid":
            if clips:  # a clip list with its own QA (Kinetics-style)
                return self.clip_mixvid_row(clips, rng, rid, split)
            return self.mixvid_row(vids, vi, rng, rid, split, pool)
        raise ValueError(f"unknown task {task!r}")

    def qas(self, v: AnnotatedVideo, until: float | None, pool: list[str], rng: np.random.Generator) -> list[Q.QA]:
        """The questions video `v` answers from its first `until` seconds (None = all of it)."""
        if v.id in self.sources.toys:
            return Q.toy_qa(self.sources.toys[v.id], until, pool, rng)
        return sequential_qa(v.events, Q.event_qa(v.events, until, pool, rng))

    def frame_times(self, v: AnnotatedVideo) -> np.ndarray | None:
        """The file's frame times (toy: known fps; real: probed once); None = unreadable (counted)."""
        if v.id not in self._times:
            if v.id in self.sources.toys:
                self._times[v.id] = nominal_times(v.duration, self.sources.toys[v.id].fps)
            else:
                try:
                    self._times[v.id] = probe_times(v.path, self.policy)
                except Exception as e:  # a broken file: DarkEventInfer cannot check it, so it is not used
                    if self.strict:
                        raise
                    self.dark_rejected[f"unreadable video ({type(e).__name__})"] += 1
                    self._times[v.id] = None
        return self._times[v.id]

    def dark_row(self, v: AnnotatedVideo, rng: np.random.Generator, rid: str, split: str) -> Row | None:
        """A DarkEventInfer row, its visibility checked on the file's own frames (paper §1)."""
        times = self.frame_times(v) if self.dark.policy is not None else None
        if self.dark.policy is not None and times is None:
            return None
        if times is not None and len(times) > 1 and times[-1] + (times[1] - times[0]) < v.duration - 1.0:
            # the file is shorter than its annotation: masks near the end would black out nothing
            end = times[-1] + (times[1] - times[0])
            v = dataclasses.replace(v, duration=float(end), events=[e for e in v.events if e.end <= end])
            self.dark_rejected["file shorter than annotated (events past its end not used)"] += 1
        row = make_dark_event_row(v, rng, self.dark, rid, split, self.sources.source, times)
        if row is None:
            self.dark_rejected.update(r for r in event_reasons(v, self.dark, times) if r)
        return row

    def clip_mixvid_row(self, clips: list[ClipQA], rng: np.random.Generator, rid: str, split: str) -> Row | None:
        """A MixVidQA row from two clips of the clip list (paper §2: Kinetics clips with a QA each)."""
        if len(clips) < 2:
            return None
        for _ in range(5):
            i, j = (int(x) for x in rng.choice(len(clips), 2, replace=False))
            row = make_clip_mixvid_row(clips[i], clips[j], rng, self.mixvid, rid, split, "clips", self.sources.step)
            if row is not None:
                return row
        return None

    def mixvid_row(self, vids: list[AnnotatedVideo], vi: int, rng: np.random.Generator, rid: str, split: str,
                   pool: list[str]) -> Row | None:
        """A MixVidQA row from video `vids[vi]` and a partner from the same split whose answer differs (paper §2)."""
        v, toy, step = vids[vi], bool(self.sources.toys), self.sources.step
        others = [j for j in range(len(vids)) if j != vi]
        for j in rng.permutation(others)[:5]:
            b = vids[int(j)]
            # each source cut to a clip first (toy-world questions are defined from t = 0, so toys start there)
            (sa, la), (sb, lb) = (cut_clip(x.duration, self.mixvid.clip_s, rng, not toy, step) for x in (v, b))
            wa, wb = window(v, sa, la), window(b, sb, lb)
            row = make_mixvid_row(wa, wb, lambda u: self.qas(wa, u, pool, rng), lambda u: self.qas(wb, u, pool, rng),
                                  rng, self.mixvid, rid, self.families, split, self.sources.source, step, (sa, sb))
            if row is not None:
                return row
        return None


# ---- the released rows (source: vidbridge) ----


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


def build_released(cfg: SynthConfig, mix: dict[str, float], out: Path, h: str) -> dict:
    """`source: vidbridge`: import the released rows, keep `task_mix` proportions, hold out `test_fraction`."""
    from vvkit.synth.importers import import_vidbridge

    rows, report = import_vidbridge(cfg.data_path, cfg.video_root, cfg.strip_prefix, cfg.strict)
    rows, selected = _select_by_mix(rows, mix, cfg.num_videos, cfg.seed)
    split_of = split_videos([r.id for r in rows], cfg.test_fraction, cfg.seed)
    summary: dict = {"counts": {}, "videos": {}, "infeasible": {}, "config_hash": h, "out_dir": str(out),
                     "import": report.to_dict(), "selected": selected, "split": "random"}
    for split in SPLITS:
        part = [dataclasses.replace(r, split=split) for r in rows if split_of[r.id] == split]
        save_rows(part, out / f"{split}.jsonl")
        summary["counts"][split] = {t: sum(r.problem_type == t for r in part) for t in DRAW_ORDER}
        summary["videos"][split] = len({p for r in part for p in r.paths})
        summary["infeasible"][split] = {}
    atomic_write_jsonl(out / "videos.jsonl", [])
    return summary


# ---- the build ----


def build_from_videos(cfg: SynthConfig, mix: dict[str, float], families: tuple[str, ...], out: Path, h: str) -> dict:
    """Toy-world or annotated videos -> rows of every split, `videos.jsonl`, and the summary of what was made."""
    from vvkit.video import FramePolicy

    policy = FramePolicy.from_dict(dict(cfg.frames or {}))
    sources = gather_sources(cfg, out, h)
    clips, clip_problems = clip_sources(cfg, policy) if cfg.mixvid_clips else ({s: [] for s in SPLITS}, [])
    maker = RowMaker.from_config(cfg, mix, families, sources, policy)
    summary: dict = {"counts": {}, "videos": {}, "infeasible": {}, "config_hash": h, "out_dir": str(out),
                     "split": sources.split_how}
    if sources.read_report is not None:
        summary["read_report"] = sources.read_report.to_dict()
    if clip_problems:
        summary["clip_problems"] = clip_problems
    for split in SPLITS:
        rows, infeasible = maker.split_rows(split, clips[split])
        save_rows(rows, out / f"{split}.jsonl")
        summary["counts"][split] = {t: sum(r.problem_type == t for r in rows) for t in DRAW_ORDER}
        summary["videos"][split] = len(sources.of_split(split))
        summary["infeasible"][split] = dict(infeasible)
    summary["dark_rejected"] = dict(maker.dark_rejected)
    toys = sources.toys
    atomic_write_jsonl(out / "videos.jsonl", [
        {"id": v.id, "path": v.path, "split": sources.split_of[v.id], "duration": v.duration,
         "events": [dataclasses.asdict(e) for e in v.events], **({"kinds": toys[v.id].kinds} if v.id in toys else {})}
        for v in sources.videos])
    return summary


def skipped_counts(summary: dict) -> dict[str, int]:
    """What the readers skipped, by reason: an annotation file's missing videos, malformed records and dropped
    segments, the released file's lines not converted, the clip list's unusable lines (counted in the manifest)."""
    out: Counter = Counter()
    read = summary.get("read_report") or {}
    out["missing video"] += read.get("missing_videos", 0)
    out["malformed record"] += read.get("skipped_records", 0)
    for reason, n in sorted((read.get("dropped_segments") or {}).items()):
        out[SEGMENT_REASONS.get(reason, f"segment dropped ({reason})")] += n
    out["unconverted release line"] += len((summary.get("import") or {}).get("problems", []))
    out["unusable clip-list line"] += len(summary.get("clip_problems", []))
    return {reason: n for reason, n in out.items() if n}


def report_skipped(summary: dict, manifest: Path) -> None:
    """Print one line with the skipped records by reason (nothing when none were), so a run shows what the
    manifest counts."""
    skipped = skipped_counts(summary)
    if skipped:
        print(f"[vvkit] skipped {sum(skipped.values())} records: "
              f"{', '.join(f'{n} {reason}' for reason, n in skipped.items())} (see {manifest})")


def build_dataset(cfg: SynthConfig, force: bool = False) -> dict:
    """Write the dataset described by `cfg` and return its summary: rows per task and split, videos per split, tasks
    that could not be made for some videos, what the readers skipped, and whether the cache was used."""
    mix, families = _check(cfg)
    out, h = output_dir(cfg), config_hash(cfg)
    manifest = out / "manifest.json"
    if not force and manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("config_hash") == h and all((out / f"{s}.jsonl").exists() for s in SPLITS):
            report_skipped(m["summary"], manifest)
            return {**m["summary"], "cached": True}
    out.mkdir(parents=True, exist_ok=True)
    if cfg.source == "vidbridge":
        summary = build_released(cfg, mix, out, h)
    else:
        summary = build_from_videos(cfg, mix, families, out, h)
    atomic_write_json(manifest, {"config_hash": h, "config": config_dict(cfg), "prompt_version": PROMPT_VERSION,
                                 "synth_version": SYNTH_VERSION, "summary": summary})
    report_skipped(summary, manifest)
    return {**summary, "cached": False}


def materialize_row(row: Row, out_path: str, fps: float | None = None) -> Path:
    """Write the row's edited video (black span or interleaved clips) as an mp4, for inspection or for tools that
    cannot apply edits lazily; training and evaluation read the edits lazily instead."""
    from vvkit.video import materialize as _materialize

    return _materialize(row.video, row.edits, out_path, fps=fps)
