"""Two-process GRPO run for tests/test_distributed.py, launched as
`torchrun --standalone --nproc_per_node 2 tests/dist_smoke.py ROOT`: gloo on CPU, the tiny policy built with
`policy: null`, the difficulty filter on, four GRPO steps (two epochs), then a resume from the mid-epoch checkpoint
of epoch 1 into another folder. Each rank records, per loss call, the rows it scored, their advantages and whether
every row's video tensors equal that row's own encoding; ROOT/rec_{A,B}_rank{r}.json hold the records."""
import json
import shutil
import sys
from pathlib import Path

import torch

FRAMES = {"nframes": 4, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}


def varied_reward(completions, **kwargs):
    """Spread inside every group, so advantages are non-zero."""
    return [(sum(map(ord, c[0]["content"])) % 11) / 10 for c in completions]


def config(root: Path, name: str, **kw):
    from vvkit.grpo_config import TrainConfig

    base = dict(run_dir=str(root / "run"), output_dir=str(root / name), frames=FRAMES, policy=None,
                train_data=str(root / "data" / "train.jsonl"), num_generations=2, per_device_train_batch_size=2,
                max_completion_length=4, max_steps=4, learning_rate=5e-3, save_strategy="steps", save_steps=3,
                logging_steps=1, disable_tqdm=True, seed=0, report_to="none", difficulty_filter_k=2,
                rewards={"reward_funcs": ["accuracy", "dist_smoke:varied_reward"]})
    return TrainConfig(**{**base, **kw})


def install_recorder(records: list) -> None:
    """Wrap VideoGRPOTrainer._compute_loss: per call, the rows (identified by their prompt ids), advantages and a
    per-row check that pixels, grid and seconds-per-grid equal the row's own encoding."""
    from vvkit.rollout import encode_row
    from vvkit.grpo_trainer import VideoGRPOTrainer

    inner = VideoGRPOTrainer._compute_loss

    def spy(self, model, inputs):
        by_prompt = {}
        for rec in self.train_dataset:
            enc = encode_row(self.processing_class, rec, self.frame_policy)[1]
            by_prompt[tuple(enc.input_ids)] = (rec["id"], enc)
        ids, adv, video_ok = [], [], []
        for i in range(inputs["prompt_ids"].size(0)):
            prompt = tuple(t for t, m in zip(inputs["prompt_ids"][i].tolist(), inputs["prompt_mask"][i].tolist()) if m)
            row_id, enc = by_prompt[prompt]
            ids.append(row_id)
            adv.append(float(inputs["advantages"][i]))
            video_ok.append(bool(torch.equal(inputs["pixel_values_videos"][i], enc.pixel_values_videos)
                                 and torch.equal(inputs["video_grid_thw"][i], enc.video_grid_thw)
                                 and torch.allclose(inputs["second_per_grid_ts"][i], enc.second_per_grid_ts)))
        records.append({"step": self.state.global_step + 1, "ids": ids, "advantages": adv, "video_ok": video_ok,
                        "dataset": [r["id"] for r in self.train_dataset]})
        return inner(self, model, inputs)

    VideoGRPOTrainer._compute_loss = spy


def main(root: Path) -> int:
    from vvkit.dist import process_state
    from vvkit.train import train

    torch.set_num_threads(1)
    records: list = []
    install_recorder(records)
    cfg = config(root, "A")
    state = process_state(cfg)  # after the config: it sets up gloo on CPU (a bare PartialState() would not)
    rank = state.process_index
    final = train(cfg)
    (root / f"rec_A_rank{rank}.json").write_text(json.dumps({"records": records, "final": str(final),
                                                             "world": state.num_processes}))
    records.clear()
    if state.is_main_process:  # resume from A's mid-epoch checkpoint (step 3 = first of epoch 1) in folder B
        shutil.copytree(root / "A" / "checkpoint-3", root / "B" / "checkpoint-3")
        for name in ("train_filtered.jsonl", "difficulty.json"):
            shutil.copy(root / "A" / name, root / "B" / name)
    state.wait_for_everyone()
    final = train(config(root, "B", resume_from_checkpoint="last"))
    (root / f"rec_B_rank{rank}.json").write_text(json.dumps({"records": records, "final": str(final)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
