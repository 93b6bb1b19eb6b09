"""Two-process bf16 GRPO run for tests/test_zero3.py: records the temporal M-RoPE positions of every video, per pass,
while `vvkit.train` runs (`torchrun --nproc_per_node 2 tests/dist_positions.py OUT -- <vvkit.train args>`).

Qwen2.5-VL spaces a video's temporal positions by `tokens_per_second x second_per_grid_ts` and truncates, in the
dtype of `second_per_grid_ts`; a bf16 copy of that tensor in the sampling pass and an fp32 one in the loss passes
give some clips different positions, so the loss would score completions under positions they were not sampled with.
OUT/positions_rank<r>.json holds [{pass, grid, dtype, temporal}]."""
import json
import os
import sys
from pathlib import Path

import torch
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

from vvkit.grpo_trainer import VideoGRPOTrainer
from vvkit.train import main

PASS = ["logp"]
RECORDS: list[dict] = []


def install() -> None:
    owner = next(c for c in qwen.Qwen2_5_VLModel.__mro__ if "get_vision_position_ids" in vars(c))
    inner = owner.get_vision_position_ids

    def spy(self, start_position, grid_thw, *args, **kwargs):
        out = inner(self, start_position, grid_thw, *args, **kwargs)
        interval = kwargs.get("time_interval", args[2] if len(args) > 2 else None)
        if isinstance(interval, torch.Tensor):  # videos (images use a plain 1)
            RECORDS.append({"pass": PASS[0], "grid": [int(x) for x in grid_thw], "dtype": str(interval.dtype),
                            "temporal": sorted({int(t) - int(start_position) for t in out[0].tolist()})})
        return out

    owner.get_vision_position_ids = spy
    sample = VideoGRPOTrainer._generate_single_turn

    def sampling(self, *args, **kwargs):
        PASS[0] = "sample"
        try:
            return sample(self, *args, **kwargs)
        finally:
            PASS[0] = "logp"

    VideoGRPOTrainer._generate_single_turn = sampling


if __name__ == "__main__":
    out = Path(sys.argv[1])
    install()
    rc = main(sys.argv[3:])
    (out / f"positions_rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(RECORDS))
    sys.exit(rc)
