"""The source videos of a build and their split: rendered toy-world videos, or the videos of an annotation file split
by the file's own subsets or at random, and the MixVidQA clip list; train and test never share a video (paper §3:
the held-out videos are never trained on)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from vvkit.io import atomic_write_text
from vvkit.schema import SPLITS
from vvkit.synth.adapters import AnnotatedVideo, ReadReport, load_annotations
from vvkit.synth.mixvid import ClipQA, read_clip_qa
from vvkit.synth.toyrender import render
from vvkit.synth.toyworld import ToyVideo, generate

if TYPE_CHECKING:  # annotations only: the stage configs sit above the data path
    from vvkit.config import SynthConfig
    from vvkit.video import FramePolicy


@dataclass
class Sources:
    """The source videos of a build, the split of each, and what the rows record about where they came from."""

    videos: list[AnnotatedVideo]
    split_of: dict[str, str]  # video id -> 'train' | 'test'
    split_how: str  # 'random', 'official', or why random was chosen
    source: str  # the rows' `source`: 'toyworld' or the annotation format
    step: float | None  # the files' frame step when known (toy world: 1 / fps), for cutting chunks on frames
    toys: dict[str, ToyVideo] = field(default_factory=dict)  # video id -> its toy-world script
    read_report: ReadReport | None = None  # what an annotation reader skipped

    def of_split(self, split: str) -> list[AnnotatedVideo]:
        return [v for v in self.videos if self.split_of[v.id] == split]


def gather_sources(cfg: SynthConfig, out: Path, config_hash: str) -> Sources:
    """Toy-world videos split at random, or an annotation file's videos split as `cfg.split` says; toy videos
    rendered under `out` with the same `config_hash` are reused."""
    if cfg.source == "toyworld":
        videos, toys = _toy_sources(cfg, out, config_hash)
        return Sources(videos, split_videos([v.id for v in videos], cfg.test_fraction, cfg.seed), "random",
                       "toyworld", 1.0 / cfg.fps, toys)
    videos, report = load_annotations(cfg.source, cfg.annotation_format, cfg.video_root, cfg.strict)
    videos = videos[: cfg.num_videos] if cfg.num_videos > 0 else videos
    split_of, how = official_split(videos, cfg.split, cfg.test_fraction, cfg.seed)
    return Sources(videos, split_of, how, cfg.annotation_format, None, read_report=report)


def _toy_sources(cfg: SynthConfig, out: Path, h: str) -> tuple[list[AnnotatedVideo], dict[str, ToyVideo]]:
    """Render (or reuse, when the folder was made with the same config) `num_videos` toy videos."""
    from vvkit.video import write_video

    vdir = out / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    stamp = vdir / ".config_hash"
    reuse = stamp.exists() and stamp.read_text().strip() == h
    atomic_write_text(stamp, h)
    videos, toys = [], {}
    for i in tqdm(range(cfg.num_videos), desc="toy world"):
        seed = int(np.random.SeedSequence([cfg.seed, 1, i]).generate_state(1)[0])
        toy = generate(seed, cfg.difficulty, cfg.size, cfg.fps, cfg.min_duration, cfg.max_duration, cfg.texture)
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


def probe_times(path: str, frame_policy: FramePolicy) -> np.ndarray:
    """Frame timestamps of a file as the training decoder sees them (one header probe, no decoding)."""
    from vvkit.decode import run_task

    return np.asarray(run_task(frame_policy.timeout_s, path, "probe", path, frame_policy.backend, True)["times"], float)


def clip_sources(cfg: SynthConfig, frame_policy: FramePolicy) -> tuple[dict[str, list[ClipQA]], list[str]]:
    """The MixVidQA clip list, split by its own `split` field or at random, with unknown durations probed."""
    clips, problems = read_clip_qa(cfg.mixvid_clips, cfg.video_root or None, cfg.strict)
    for c in clips:
        if c.length is None:
            try:
                t = probe_times(c.video, frame_policy)
                c.duration = float(t[-1] + (t[1] - t[0])) if len(t) > 1 else None
            except Exception as e:
                problems.append(f"{c.video}: could not read its duration ({type(e).__name__}: {e})")
    clips = [c for c in clips if c.length is not None]
    labelled = all(c.split in SPLITS for c in clips)
    split_of = ({c.id: c.split for c in clips} if labelled and clips
                else split_videos([c.id for c in clips], cfg.test_fraction, cfg.seed))
    return {s: [c for c in clips if split_of[c.id] == s] for s in SPLITS}, problems
