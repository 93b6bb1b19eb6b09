"""The world bench_memory.py and bench_vllm.py share: the ~54M-parameter Qwen2.5-VL-shaped random policy
(`vvkit.model.SIZES["mid"]`, the tiny policy's tokenizer) and multiple-choice rows over two 32-frame 224x224 videos
of a red or a blue square moving right. vvkit is imported inside the functions, so a measuring process that imports
this module pays for nothing before its baseline."""
from __future__ import annotations

from pathlib import Path

FRAMES = {"nframes": 16, "min_pixels": 3136, "max_pixels": 168 * 168, "backend": "pyav", "timeout_s": 0}


def mid_policy(root: Path) -> Path:
    from vvkit.model import build_tiny_policy

    return build_tiny_policy(root / "policy", seed=0, size="mid")


def square_rows(root: Path, per_video: int = 1) -> list:
    """`per_video` mcq rows ("What colour is the shape?") for each of the two videos, written under `root`."""
    import numpy as np

    from vvkit.schema import Row
    from vvkit.video import write_video

    rows = []
    for i, colour in enumerate([(230, 40, 40), (40, 40, 230)]):
        frames = np.full((32, 224, 224, 3), 96, np.uint8)
        for k in range(32):
            frames[k, 80:120, 10 + 4 * k:50 + 4 * k] = colour
        write_video(frames, root / f"v{i}.mp4", fps=8)
        rows += [Row(f"r{i}{j}", str(root / f"v{i}.mp4"), "What colour is the shape?", "AB"[i], "mcq",
                     ["A. red", "B. blue", "C. green", "D. white"]) for j in range(per_video)]
    return rows
