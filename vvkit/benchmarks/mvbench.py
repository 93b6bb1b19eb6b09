"""MVBench (OpenGVLab/MVBench) read into mcq rows.

Annotations: `json/<task>.json`, each a list of {video, question, candidates, answer, start?, end?}. Videos: in each
task's own folder under `<root>/video/` (the hub, VLMEvalKit) or `<root>/` (lmms-eval's copy, with pre-cut
`*_segment` folders), or `{task: folder}` as video_root.
"""
from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from vvkit.benchmarks.common import BenchmarkError, find_video, missing, read_json_records, require_field, to_row
from vvkit.schema import Row

# Each task's video folder: the hub's (OpenGVLab/MVBench video/..., as VLMEvalKit lists them) first, then lmms-eval's
# copy, whose `*_segment` folders hold clips already cut to [start, end].
MVBENCH_VIDEO_DIRS: dict[str, tuple[str, ...]] = {
    "action_sequence": ("star/Charades_v1_480", "star/Charades_segment"),
    "action_prediction": ("star/Charades_v1_480", "star/Charades_segment"),
    "action_antonym": ("ssv2_video", "ssv2_video_mp4"),
    "fine_grained_action": ("Moments_in_Time_Raw/videos",),
    "unexpected_action": ("FunQA_test/test",),
    "object_existence": ("clevrer/video_validation",),
    "object_interaction": ("star/Charades_v1_480", "star/Charades_segment"),
    "object_shuffle": ("perception/videos",),
    "moving_direction": ("clevrer/video_validation",),
    "action_localization": ("sta/sta_video", "sta/sta_video_segment"),
    "scene_transition": ("scene_qa/video",),
    "action_count": ("perception/videos",),
    "moving_count": ("clevrer/video_validation",),
    "moving_attribute": ("clevrer/video_validation",),
    "state_change": ("perception/videos",),
    "fine_grained_pose": ("nturgbd", "nturgbd_convert"),
    "character_order": ("perception/videos",),
    "egocentric_navigation": ("vlnqa",),
    "episodic_reasoning": ("tvqa/frames_fps3_hq", "tvqa/video_fps3_hq_segment"),
    "counterfactual_inference": ("clevrer/video_validation",),
}


def _mvbench_files(path: Path) -> tuple[list[Path], Path]:
    """(task files, dataset root) from a task file, the json/ folder or the dataset root holding json/."""
    if path.is_file():
        return [path], path.parent.parent if path.parent.name == "json" else path.parent
    if path.is_dir():
        folder = path / "json" if (path / "json").is_dir() else path
        files = sorted(folder.glob("*.json"))
        if not files:
            raise missing("mvbench", "task files (json/<task>.json)", folder)
        return files, folder.parent if folder.name == "json" else folder
    raise missing("mvbench", "task file, json/ folder or dataset root", path)


def _mvbench_video(task: str, video: str, root: Path, video_root: Any, where: str) -> tuple[str, bool]:
    """(path, whether the clip is already cut to its window) of one MVBench video."""
    if isinstance(video_root, dict):
        if task not in video_root:
            raise BenchmarkError(f"{where}: no video folder for task {task!r} in video_root; add {task}: <folder>")
        return find_video([Path(video_root[task])], [video]), False
    base = Path(video_root) if video_root else root
    dirs = MVBENCH_VIDEO_DIRS.get(task, ())
    subdirs = [f"video/{d}" for d in dirs] + list(dirs) + [f"video/data0613/{d}" for d in dirs] + ["video", ""]
    found = find_video([base], [video], subdirs)
    segment = any(part.endswith("_segment") for part in Path(found).parts)
    return found, segment


def load_mvbench(path: str | os.PathLike, video_root: str | os.PathLike | dict | None = None) -> list[Row]:
    """MVBench rows (mcq): one task file, the json/ folder or the dataset root; the answer text becomes the letter
    of its candidate, `meta["task"]` is the task (the per-task breakdown) and `meta["window"]` the part of the video
    asked about (left out for lmms-eval's pre-cut `*_segment` clips)."""
    files, root = _mvbench_files(Path(path))
    rows = []
    for f in files:
        task = f.stem
        for i, (where, rec) in enumerate(read_json_records(f, "mvbench")):
            cands = require_field(rec, "candidates", where, list)
            answer = require_field(rec, "answer", where)
            if not all(isinstance(c, str) for c in cands) or not 2 <= len(cands) <= 26:
                raise BenchmarkError(f"{where}: field 'candidates' must be 2-26 strings, got {cands!r}")
            if answer not in cands:
                raise BenchmarkError(f"{where}: field 'answer' {answer!r} is not one of the candidates {cands}")
            video, cut = _mvbench_video(task, require_field(rec, "video", where), root, video_root, where)
            meta: dict[str, Any] = {"task": task}
            if (rec.get("start") is not None or rec.get("end") is not None) and not cut:
                bounds = [rec.get("start"), rec.get("end")]
                if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
                    raise BenchmarkError(f"{where}: fields 'start'/'end' = {bounds} must both be numbers of seconds")
                meta["window"] = [float(b) for b in bounds]
            rows.append(to_row({
                "id": f"mvbench/{task}/{i}", "video": video,
                "problem": require_field(rec, "question", where), "solution": string.ascii_uppercase[cands.index(answer)],
                "problem_type": "mcq", "options": [f"{string.ascii_uppercase[j]}. {c}" for j, c in enumerate(cands)],
                "source": "mvbench", "split": "test", "meta": meta,
            }, where))
    return rows
