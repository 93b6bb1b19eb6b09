"""GPU-only benchmark: one GRPO step of a randomly initialised Qwen2.5-VL-7B-Instruct-shaped model (config values
written below, nothing downloaded) on a 16-frame video at <= 196*28*28 pixels per frame, G = 8, bf16 (paper §5).

Phases, timed separately with peak GPU memory:
  rollout  one batched generate of G completions of `--new-tokens` tokens each (min = max, so all run full length);
  update   forward + backward of the G sequences (prompt with video + completion) with activation checkpointing,
           a policy-gradient loss on completion tokens, and one optimizer step.
The update's throughput is reported as model FLOPs per second over the GPU's dense bf16 peak (TRL's FLOP count and
peak table: 6 x parameters per token plus attention scores; the vision tower adds 6 x its parameters per patch;
recomputation by checkpointing is not counted, as MFU conventions do).

Optimizers: `sgd` (default; no state, so the 7B fits one 80 GB GPU: weights + gradients ~33 GB), `adamw` (bf16
states, another ~33 GB: needs a ~141 GB GPU). Multi-GPU ZeRO-3 runs use `accelerate launch` with vvkit.train instead.

    python benchmarks/bench_gpu_step.py            # the suite: full and LoRA x completion 512 and 2048 (one H200: <10 min)
    python benchmarks/bench_gpu_step.py --new-tokens 512 --cases full [--micro-batch 8] [--optimizer sgd] [--steps 1]

Cases share one model build: `full` trains every weight; `lora` wraps the same model with peft LoRA (r=64 on the
attention projections q/k/v/o of the language model) and trains the adapters only (its update counts 4 x instead of
6 x parameters per token: no weight gradients for the frozen base). Each length gets one untimed warm-up step at
16 tokens (kernels, allocator), then `--steps` timed steps.

Writes benchmarks/results/gpu_step.json (atomic; {"cases": [...]}). Exits with a message when there is no CUDA GPU.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

# Qwen2.5-VL-7B-Instruct (config.json of the public checkpoint): text decoder and vision tower.
TEXT = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
            num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6, hidden_act="silu",
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            bos_token_id=151643, eos_token_id=151645)
VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
              spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
              tokens_per_second=2, in_chans=3, hidden_act="silu")
IDS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
FRAMES, SIDE = 16, 392  # 392 * 392 = 196 * 28 * 28 pixels per frame (VIDEO_MAX_PIXELS of the authors' qwen-vl-utils)
TEXT_BEFORE, TEXT_AFTER = 16, 64  # chat template + question + options + instruction around the video block


# --dry-run: the same code on CPU with a micro model (checks the script where there is no GPU; writes nothing).
DRY_TEXT = {**TEXT, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4,
                                                          "mrope_section": [2, 3, 3]}}
DRY_VISION = {**VISION, "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
              "fullatt_block_indexes": [1]}


def build_model(device: str, dry_run: bool = False) -> torch.nn.Module:
    """Random-weight Qwen2.5-VL-7B in bf16 directly on the GPU (sdpa attention; flash-attn is optional)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text, vision = (DRY_TEXT, DRY_VISION) if dry_run else (TEXT, VISION)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **IDS)
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = 151643
    return model


def video_prompt(device: str, frames: int = FRAMES, side: int = SIDE, seed: int = 0) -> dict[str, torch.Tensor]:
    """Token ids with one 16-frame video block and its patches: grid (8, 28, 28) -> 1568 merged video tokens."""
    g = torch.Generator().manual_seed(seed)
    t, hw = frames // 2, side // 14
    n_video = t * (hw // 2) * (hw // 2)
    ids = torch.cat([torch.randint(0, 150000, (TEXT_BEFORE,), generator=g),
                     torch.tensor([IDS["vision_start_token_id"]]), torch.full((n_video,), IDS["video_token_id"]),
                     torch.tensor([IDS["vision_end_token_id"]]),
                     torch.randint(0, 150000, (TEXT_AFTER,), generator=g)])[None]
    types = (ids == IDS["video_token_id"]).long() * 2
    pixels = torch.randn(t * hw * hw, 3 * 2 * 14 * 14, generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "mm_token_type_ids": types.to(device), "pixel_values_videos": pixels.to(device, torch.bfloat16),
            "video_grid_thw": torch.tensor([[t, hw, hw]], device=device),
            "second_per_grid_ts": torch.tensor([2 / 2.0], device=device)}  # 16 frames sampled at 2 fps


def repeat(prompt: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """The prompt n times; every row carries its own copy of the video, as in GRPO's generation batch."""
    return {k: torch.cat([v] * n) for k, v in prompt.items()}


def update_flops(model: torch.nn.Module, prompt_len: int, new_tokens: int, rows: int, patches: int) -> float:
    """Model FLOPs of forward + backward over the update batch (TRL's count; lm_head only on completion tokens)."""
    from trl.trainer.utils import compute_flops_per_token

    text = model.config.get_text_config()
    seq = prompt_len + new_tokens
    lm_head = 3 * 2 * text.vocab_size * text.hidden_size
    per_token = compute_flops_per_token(text, seq) - lm_head
    vision_params = sum(p.numel() for p in model.model.visual.parameters())
    return rows * (seq * per_token + new_tokens * lm_head + 6 * vision_params * patches)


LORA = {"r": 64, "lora_alpha": 128, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "lora_dropout": 0.0}
LENGTHS = (512, 2048)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--new-tokens", type=int, nargs="+", default=list(LENGTHS),
                    help="completion lengths (the paper allows up to 2048)")
    ap.add_argument("--cases", nargs="+", choices=["full", "lora"], default=["full", "lora"])
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward in the update")
    ap.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    ap.add_argument("--steps", type=int, default=1, help="timed steps per length after a short warm-up step")
    ap.add_argument("--dry-run", action="store_true", help="micro model on CPU: check the script, write nothing")
    args = ap.parse_args()
    if args.dry_run:
        return suite(args, "cpu", dry_run=True)
    if not torch.cuda.is_available():
        print("bench_gpu_step.py needs a CUDA GPU (it builds a 7B model in bf16); none is visible here. "
              "Run it on a GPU machine: python benchmarks/bench_gpu_step.py", file=sys.stderr)
        return 2
    return suite(args, "cuda")


def run(args: argparse.Namespace, device: str, dry_run: bool = False) -> int:
    """One case (`args.new_tokens`: one length; `args.lora`: LoRA or full), as `suite` runs it."""
    n = args.new_tokens if isinstance(args.new_tokens, int) else args.new_tokens[0]
    one = argparse.Namespace(**{**vars(args), "new_tokens": [n],
                                "cases": ["lora" if getattr(args, "lora", False) else "full"]})
    return suite(one, device, dry_run)


def suite(args: argparse.Namespace, device: str, dry_run: bool = False) -> int:
    """Build once; for each case (full, then LoRA) and length: warm up, time `args.steps` rollout + update steps;
    write every case's results (GPU runs)."""
    from vvkit.io import atomic_write_json

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    t0 = time.perf_counter()
    model = build_model(device, dry_run)
    build_s = time.perf_counter() - t0
    model.config.use_cache = model.config.get_text_config().use_cache = False  # generate() asks for the cache
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    prompt = video_prompt(device, 4, 56) if dry_run else video_prompt(device)
    cases = []
    for case in args.cases:
        if case == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
            model.enable_input_require_grads()  # checkpointed blocks need a grad-carrying input
        for n in args.new_tokens:
            rec = measure(model, prompt, args, device, n, lora=case == "lora")
            rec["setup"]["model_build_s"] = round(build_s, 1)
            cases.append(rec)
            print(f"{case} {n}: rollout {rec['rollout_s']} s ({rec['rollout_tokens_per_s']} tok/s), update "
                  f"{rec['update_s']} s, peak {rec['peak_memory_gib']} GiB, "
                  f"{rec['update_fraction_of_bf16_peak']} of bf16 peak", flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    if dry_run:
        print("dry run ok:", [(c["setup"]["case"], c["setup"]["new_tokens"]) for c in cases])
        return 0
    path = atomic_write_json(HERE / "results" / "gpu_step.json", {"cases": cases})
    print(f"-> {path}")
    return 0


def measure(model: torch.nn.Module, prompt: dict, args: argparse.Namespace, device: str, N: int,
            lora: bool = False) -> dict:
    """Time one rollout + update step `args.steps` times at completion length N, after a 16-token warm-up step."""
    from trl.trainer.utils import get_peak_flops

    G = args.generations
    P, patches = prompt["input_ids"].shape[1], prompt["pixel_values_videos"].shape[0]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=1e-6) if args.optimizer == "sgd"
           else torch.optim.AdamW(params, lr=1e-6, foreach=False))

    def rollout(n: int) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            out = model.generate(**repeat(prompt, G), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=n, min_new_tokens=n, use_cache=True)
        return out[:, P:]

    def update(completions: torch.Tensor) -> None:
        model.train()
        n = completions.shape[1]
        adv = torch.randn(G, device=device)  # stand-in advantages: the loss shape, not its value, matters here
        for s in range(0, G, args.micro_batch):
            rows = completions[s:s + args.micro_batch]
            b = rows.shape[0]
            batch = repeat(prompt, b)
            ids = torch.cat([batch["input_ids"], rows], 1)
            kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                  "mm_token_type_ids": torch.cat([batch["mm_token_type_ids"], torch.zeros_like(rows)], 1),
                  **{k: batch[k] for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")}}
            logits = model(**kw, logits_to_keep=n + 1).logits[:, :-1].float()  # (b, n, V)
            logp = torch.log_softmax(logits, -1).gather(-1, rows[..., None])[..., 0]
            loss = -(logp.mean(1) * adv[s:s + b]).sum() / G
            loss.backward()
            del logits, logp, loss
        opt.step()
        opt.zero_grad(set_to_none=True)

    cuda = device == "cuda"
    phases: dict[str, list[float]] = {"rollout_s": [], "update_s": []}
    peaks: dict[str, float] = {}
    for step in range(args.steps + 1):
        n = N if step > 0 else min(N, 16)  # step 0 warms up kernels and the allocator, briefly
        for name in ("rollout", "update"):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            if name == "rollout":
                completions = rollout(n)
                assert completions.shape == (G, n), completions.shape
            else:
                update(completions)
            if cuda:
                torch.cuda.synchronize()
            if step > 0:
                phases[f"{name}_s"].append(time.perf_counter() - t0)
                peaks[name] = max(peaks.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0)
    del opt
    rollout_s = sum(phases["rollout_s"]) / args.steps
    update_s = sum(phases["update_s"]) / args.steps
    name = torch.cuda.get_device_name() if cuda else "cpu (dry run)"
    peak = get_peak_flops(name, "bfloat16")
    base = model.get_base_model() if lora else model
    flops = update_flops(base, P, N, G, patches) * (4 / 6 if lora else 1.0)
    return {
        "setup": {"case": "lora" if lora else "full", "gpu": name, "torch": torch.__version__,
                  "python": platform.python_version(), "parameters": sum(p.numel() for p in model.parameters()),
                  "trainable_parameters": sum(p.numel() for p in params), "lora": LORA if lora else None,
                  "prompt_tokens": P, "video_tokens": int((prompt["input_ids"] == IDS["video_token_id"]).sum()),
                  "vision_patches": patches, "frames": FRAMES, "pixels_per_frame": SIDE * SIDE, "generations": G,
                  "new_tokens": N, "micro_batch": args.micro_batch, "optimizer": args.optimizer, "dtype": "bfloat16",
                  "activation_checkpointing": True, "attention": "sdpa", "timed_steps": args.steps},
        "rollout_s": round(rollout_s, 3), "update_s": round(update_s, 3), "step_s": round(rollout_s + update_s, 3),
        "rollout_tokens_per_s": round(G * N / rollout_s, 1),
        "peak_memory_gib": {k: round(v, 2) for k, v in peaks.items()},
        "update_model_tflops": round(flops / 1e12, 3), "update_tflops_per_s": round(flops / update_s / 1e12, 3),
        "bf16_peak_tflops": peak and peak / 1e12,
        "update_fraction_of_bf16_peak": round(flops / update_s / peak, 3) if peak else None,
        "times_s": {k: [round(t, 3) for t in v] for k, v in phases.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
