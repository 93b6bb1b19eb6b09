"""Two-process GRPO run with use_vllm for tests/test_vllm.py, launched as
`torchrun --standalone --nproc_per_node 2 tests/dist_vllm.py ROOT`: gloo on CPU, one colocated vLLM engine per rank
(`distributed_executor_backend="external_launcher"`), two GRPO steps on ROOT/policy and ROOT/data/train.jsonl. Each
rank writes ROOT/vllm_rank{r}.json: its engine's executor backend, the ids it sampled and the ids its loss scored."""
import json
import sys
from pathlib import Path

FRAMES = {"nframes": 4, "min_pixels": 56 * 56, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}


def varied_reward(completions, **kwargs):
    """Spread inside every group, so advantages are non-zero."""
    return [(sum(map(ord, c[0]["content"])) % 11) / 10 for c in completions]


def main(root: Path) -> None:
    import torch

    from vvkit import grpo_trainer
    from vvkit.data import grpo_dataset
    from vvkit.grpo_config import TrainConfig
    from vvkit.model import load_policy
    from vvkit.schema import load_rows

    torch.set_num_threads(1)
    sampled, scored = [], []
    real_generate = grpo_trainer.generate_ids

    def spy_generate(*a, **k):
        sampled.append(real_generate(*a, **k))
        return sampled[-1]

    grpo_trainer.generate_ids = spy_generate
    model, processor = load_policy(root / "policy")
    cfg = TrainConfig(run_dir=str(root / "run"), frames=FRAMES, policy=str(root / "policy"), num_generations=2,
                      per_device_train_batch_size=2, max_completion_length=6, max_steps=2, learning_rate=5e-3,
                      report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0,
                      use_vllm=True, vllm_max_model_length=1024)
    trainer = grpo_trainer.VideoGRPOTrainer(model=model, reward_funcs=[varied_reward], args=cfg,
                                            processing_class=processor,
                                            train_dataset=grpo_dataset(load_rows(root / "data" / "train.jsonl")))
    inner = trainer._compute_loss

    def spy_loss(m, inputs):
        mask = inputs["completion_mask"].bool()
        scored.append(sorted(row[k].tolist() for row, k in zip(inputs["completion_ids"], mask)))
        return inner(m, inputs)

    trainer._compute_loss = spy_loss
    trainer.train()
    rank = trainer.accelerator.process_index
    backend = trainer._llm.llm_engine.vllm_config.parallel_config.distributed_executor_backend
    (root / f"vllm_rank{rank}.json").write_text(json.dumps({
        "world": trainer.accelerator.num_processes, "backend": str(backend),
        "sampled": [sorted(ids for ids, _ in out) for out in sampled], "scored": scored}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
