"""The GPU check: one script, one GPU, under 5 minutes, at the paper's shapes (Qwen2.5-VL-7B-Instruct's config with
random bf16 weights, or a real checkpoint folder with --policy; one 16-frame video at 196*28*28 pixels per frame =
1,568 video tokens; G = 8; paper §5).

  decode    ms per decoding step of one batched `generate` of G completions (the prefill is timed apart);
  vision    the vision tower's forward over one video with sdpa and with flash_attention_2 (or why FA2 is not there);
  update    one GRPO update as vvkit's trainer runs it, after a short warm-up update (so Adam's states exist):
            generate G completions, per-token log-probs through TRL's fused LM head (`add_fused_lm_head`: the logits
            are never materialised) with activation checkpointing under bf16 autocast, TRL's `grpo` loss, backward,
            AdamW; LoRA r=64 on q/k/v/o over a bf16 base (params/paper_1gpu.yaml's setting). Time per phase, and
            torch.cuda.max_memory_allocated against `vvkit.budget.estimate_memory` for the same config (less its
            CUDA-context line, which the allocator does not see);
  logprobs  rollout-vs-loss agreement under bf16: the log-prob of each sampled token at sampling time (a hook on
            the LM head keeps each step's raw logits) against the loss pass's, max and mean absolute difference; and
            the loss pass against a teacher-forced pass whose seconds-per-grid is cast to bf16, as TRL's
            `_prepare_input` casts it for generation under DeepSpeed (a 37.3 s clip: M-RoPE positions differ).
            Random weights: the LM head is scaled so logits spread like a trained model's (std ~4) instead of being
            near-uniform; --policy gives the real check.

    python benchmarks/bench_gpu_step.py                                   # -> benchmarks/results/gpu_step.json
    python benchmarks/bench_gpu_step.py --policy /models/Qwen2.5-VL-7B-Instruct
    python benchmarks/bench_gpu_step.py --cpu-smoke --out /tmp/smoke.json  # a micro model on the CPU, < 2 min
"""
from __future__ import annotations

import argparse
import contextlib
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

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
# --cpu-smoke: the same code on a micro model.
SMOKE_TEXT = {**TEXT, "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "bos_token_id": 1000, "eos_token_id": 1001,
              "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}}
SMOKE_VISION = {**VISION, "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                "fullatt_block_indexes": [1]}
SMOKE_IDS = dict(image_token_id=1002, video_token_id=1003, vision_start_token_id=1004, vision_end_token_id=1005)
TEXT_BEFORE, TEXT_AFTER = 16, 64  # chat template + question + options + instruction around the video block
SECONDS_PER_GRID = 2 * 37.3 / 16  # 16 frames of a 37.3 s clip, two frames per temporal patch
LOGIT_STD = 4.0  # random weights: the LM head is scaled so that sampling is not near-uniform
LORA = {"r": 64, "lora_alpha": 128, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "lora_dropout": 0.0}


def build_model(policy: str | None, smoke: bool, device: str) -> torch.nn.Module:
    """A real checkpoint (bf16) or the 7B / micro config with random bf16 weights, on `device`, sdpa attention."""
    if policy:
        from vvkit.model import load_policy

        model, _ = load_policy(policy, dtype=torch.bfloat16, attn_implementation="sdpa", device=device)
        return model
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text, vision, ids = (SMOKE_TEXT, SMOKE_VISION, SMOKE_IDS) if smoke else (TEXT, VISION, IDS)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = text["bos_token_id"]
    with torch.no_grad():  # random logits have std ~0.02 sqrt(hidden): spread them to ~4, a trained model's range
        spread = config.get_text_config().initializer_range * math.sqrt(text["hidden_size"])
        model.lm_head.weight.mul_(LOGIT_STD / spread)
    return model


def video_prompt(config: Any, frames: int, side: int, device: str) -> dict[str, torch.Tensor]:
    """Token ids around one video block and its random patches: grid (frames/2, side/14, side/14)."""
    g = torch.Generator().manual_seed(0)
    t, hw = frames // 2, side // 14
    text_vocab = min(config.get_text_config().vocab_size, 150000) - 8
    ids = torch.cat([torch.randint(0, text_vocab, (TEXT_BEFORE,), generator=g),
                     torch.tensor([config.vision_start_token_id]),
                     torch.full((t * (hw // 2) ** 2,), config.video_token_id),
                     torch.tensor([config.vision_end_token_id]),
                     torch.randint(0, text_vocab, (TEXT_AFTER,), generator=g)])[None]
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "mm_token_type_ids": ((ids == config.video_token_id).long() * 2).to(device),
            "pixel_values_videos": torch.randn(t * hw * hw, 3 * 2 * 14 * 14, generator=g).to(device),
            "video_grid_thw": torch.tensor([[t, hw, hw]], device=device),
            "second_per_grid_ts": torch.tensor([SECONDS_PER_GRID], device=device)}


def repeat(prompt: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """The prompt n times; every row carries its own copy of the video, as in GRPO's generation batch."""
    return {k: torch.cat([v] * n) for k, v in prompt.items()}


class SampledLogProbs(LogitsProcessor):
    """The log-prob (at temperature 1) of each sampled token under the model's raw logits at sampling time: a hook
    on the LM head keeps each step's last-position logits; the next call reads the token sampled from them."""

    def __init__(self, lm_head: torch.nn.Module) -> None:
        self.pending: torch.Tensor | None = None
        self.last: torch.Tensor | None = None
        self.out: list[torch.Tensor] = []
        self.handle = lm_head.register_forward_hook(self._keep)

    def _keep(self, module: Any, args: Any, output: torch.Tensor) -> None:
        self.pending = output[:, -1].float()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.last is not None:
            self.out.append(self.last.gather(1, input_ids[:, -1:])[:, 0])
        self.last = torch.log_softmax(self.pending, -1)
        return scores

    def finish(self, completions: torch.Tensor) -> torch.Tensor:
        self.handle.remove()
        self.out.append(self.last.gather(1, completions[:, -1:])[:, 0])
        return torch.stack(self.out, 1)  # (G, n)


def sample(model: Any, prompt: dict, G: int, n: int, record: bool = False) -> tuple[torch.Tensor, Any]:
    """G completions of exactly n tokens in one batched generate at temperature 1 (no top-k / top-p), as TRL samples;
    with `record`, also their sampling-time log-probs."""
    from trl.models.utils import disable_gradient_checkpointing

    keep = SampledLogProbs(model.get_output_embeddings()) if record else None
    model.eval()
    with torch.no_grad(), disable_gradient_checkpointing(model, {"use_reentrant": False}):
        out = model.generate(**repeat(prompt, G), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             repetition_penalty=1.0, max_new_tokens=n, min_new_tokens=n, use_cache=True,
                             logits_processor=LogitsProcessorList([keep] if keep else []))
    completions = out[:, prompt["input_ids"].shape[1]:]
    return completions, keep.finish(completions) if keep else None


def loss_logps(model: Any, prompt: dict, completions: torch.Tensor, device: str,
               seconds: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token log-probs of the completions as TRL's loss pass computes them: the whole sequence with its video,
    labels on the completion only, `fused_lm_head=True`, under bf16 autocast."""
    b, n = completions.shape
    batch = repeat(prompt, b)
    if seconds is not None:
        batch["second_per_grid_ts"] = seconds.repeat(b)
    ids = torch.cat([batch["input_ids"], completions], 1)
    labels = ids.clone()
    labels[:, :-n] = -100
    kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
          "mm_token_type_ids": torch.cat([batch["mm_token_type_ids"], torch.zeros_like(completions)], 1),
          **{k: batch[k] for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")}}
    with torch.autocast(device, dtype=torch.bfloat16):
        return model(**kw, labels=labels, fused_lm_head=True).log_probs[:, -n:]


@contextlib.contextmanager
def measured(device: str) -> Any:
    """Yields a dict that receives the block's seconds and, on CUDA, its peak allocated GiB."""
    rec: dict[str, float | None] = {}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    yield rec
    if device == "cuda":
        torch.cuda.synchronize()
    rec["s"] = round(time.perf_counter() - t0, 3)
    rec["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def decode_speed(model: Any, prompt: dict, G: int, n: int, device: str) -> dict:
    """Prefill alone (one new token), then n tokens: ms per decoding step of the G-row batch."""
    sample(model, prompt, G, 2)  # warm-up
    with measured(device) as pre:
        sample(model, prompt, G, 1)
    with measured(device) as full:
        sample(model, prompt, G, n)
    step_s = (full["s"] - pre["s"]) / max(1, n - 1)
    return {"generations": G, "new_tokens": n, "prefill_s": pre["s"], "generate_s": full["s"],
            "decode_ms_per_token": round(1000 * step_s, 2), "tokens_per_s": round(G / step_s, 1) if step_s else None,
            "peak_gib": full["peak_gib"]}


def vision_speed(model: Any, prompt: dict, device: str, repeats: int = 3) -> dict:
    """The vision tower's no-grad forward over one video with each attention implementation."""
    out: dict[str, Any] = {}
    for name in ("sdpa", "flash_attention_2"):
        try:
            model.set_attn_implementation({"vision_config": name})
        except Exception as e:  # flash-attn missing, no CUDA, an unsupported dtype: say why
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            continue
        try:
            recs = []
            with torch.no_grad():
                for _ in range(repeats + 1):  # the first call warms up
                    with measured(device) as rec:
                        model.model.visual(prompt["pixel_values_videos"].to(torch.bfloat16),
                                           grid_thw=prompt["video_grid_thw"])
                    recs.append(rec)
            times = [r["s"] for r in recs[1:]]
            out[name] = {"ms": round(1000 * min(times), 1), "times_s": times, "peak_gib": recs[-1]["peak_gib"]}
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    model.set_attn_implementation({"vision_config": "sdpa"})
    if "ms" in out.get("flash_attention_2", {}):
        out["flash_speedup"] = round(out["sdpa"]["ms"] / out["flash_attention_2"]["ms"], 2)
    return out


def grpo_update(model: Any, opt: Any, prompt: dict, G: int, n: int, device: str) -> dict:
    """One GRPO update: sample, loss pass with TRL's grpo loss (num_iterations 1: ratio 1), backward, AdamW step."""
    with measured(device) as gen:
        completions, sampled = sample(model, prompt, G, n, record=True)
    model.train()
    adv = torch.randn(G, 1, device=device)
    with measured(device) as upd:
        logps = loss_logps(model, prompt, completions, device)
        per_token = -torch.exp(logps - logps.detach()) * adv  # TRL: coef x advantage, old log-probs = detached
        loss = per_token.mean(1).mean()  # loss_type grpo: per-sequence token mean (all tokens kept: min = max)
        loss.backward()
    with torch.no_grad():  # the same completions with the seconds-per-grid TRL sends to generate under DeepSpeed
        forced16 = loss_logps(model, prompt, completions, device, prompt["second_per_grid_ts"].to(torch.bfloat16))
    with measured(device) as stp:
        opt.step()
        opt.zero_grad(set_to_none=True)
    logps = logps.detach().float()
    diff, positions = (sampled - logps).abs(), (forced16.float() - logps).abs()
    return {"new_tokens": n, "generate_s": gen["s"], "loss_pass_s": upd["s"], "optimizer_s": stp["s"],
            "update_s": round(gen["s"] + upd["s"] + stp["s"], 3),
            "peak_gib": {"generation": gen["peak_gib"], "update": upd["peak_gib"], "step": stp["peak_gib"]},
            "logprobs": {"tokens": completions.numel(),
                         "rollout_vs_loss": {"max": round(diff.max().item(), 5), "mean": round(diff.mean().item(), 6)},
                         "bf16_seconds_vs_fp32": {"max": round(positions.max().item(), 5),
                                                  "mean": round(positions.mean().item(), 6)},
                         "mean_logp": round(logps.mean().item(), 4)}}


def estimate(model_config: Any, frames: int, side: int, G: int, n: int, device: str) -> Any:
    """vvkit.budget's estimate for the config this script runs (LoRA on bf16, checkpointing, one micro-batch)."""
    from vvkit.budget import estimate_memory

    cfg = {"frames": {"nframes": frames, "min_pixels": side * side, "max_pixels": side * side}, "num_generations": G,
           "max_completion_length": n, "per_device_train_batch_size": G, "gradient_accumulation_steps": 1,
           "bf16": True, "lora": LORA, "activation_checkpointing": True, "beta": 0.0}
    return estimate_memory(cfg, model_config, world_size=1, zero_stage=0, offload=False, device=device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default=None, help="a local Qwen2.5-VL checkpoint folder (default: random 7B weights)")
    ap.add_argument("--cpu-smoke", action="store_true", help="a micro model on the CPU: checks the script (< 2 min)")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--decode-tokens", type=int, default=256, help="tokens per completion for the decode timing")
    ap.add_argument("--new-tokens", type=int, default=512, help="completion length of the timed GRPO update")
    ap.add_argument("--out", default=None, help="result JSON (default benchmarks/results/gpu_step[_cpu_smoke].json)")
    args = ap.parse_args(argv)
    from vvkit.io import atomic_write_json

    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("bench_gpu_step.py needs a CUDA GPU (a 7B model in bf16); none is visible here. Run it on a GPU machine, "
              "or check the script with --cpu-smoke.", file=sys.stderr)
        return 2
    device = "cpu" if smoke else "cuda"
    frames, side = (16, 56) if smoke else (16, 392)
    G, n_decode, n = (2, 4, 4) if smoke else (args.generations, args.decode_tokens, args.new_tokens)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    t_start = time.perf_counter()
    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    t0 = time.perf_counter()
    model = build_model(args.policy, smoke, device)
    build_s = time.perf_counter() - t0
    prompt = video_prompt(model.config, frames, side, device)
    result: dict[str, Any] = {"setup": {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (--cpu-smoke)",
        "policy": args.policy or ("random micro config" if smoke else "random Qwen2.5-VL-7B config"),
        "torch": torch.__version__, "python": platform.python_version(), "dtype": "bfloat16", "frames": frames,
        "pixels_per_frame": side * side, "prompt_tokens": prompt["input_ids"].shape[1],
        "vision_patches": prompt["pixel_values_videos"].shape[0], "generations": G, "lora": LORA,
        "activation_checkpointing": True, "random_logit_std": None if args.policy else LOGIT_STD,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_build_s": round(build_s, 1), "command": "python benchmarks/bench_gpu_step.py " + " ".join(
            sys.argv[1:] if argv is None else argv)}}
    result["decode"] = decode_speed(model, prompt, G, n_decode, device)
    print(f"decode: {result['decode']['decode_ms_per_token']} ms per step of {G} rows", flush=True)
    result["vision"] = vision_speed(model, prompt, device)
    print(f"vision: {result['vision']}", flush=True)

    # ---- the update, as the trainer builds it: fused LM head, then LoRA, activation checkpointing ----
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, fused=device == "cuda")
    grpo_update(model, opt, prompt, G, min(n, 16), device)  # warm-up: kernels, allocator, Adam's states
    upd = grpo_update(model, opt, prompt, G, n, device)
    result["logprobs"] = {**upd.pop("logprobs"), "seconds_per_grid": {
        "fp32": prompt["second_per_grid_ts"].item(), "bf16": prompt["second_per_grid_ts"].to(torch.bfloat16).item()}}
    est = estimate(model.config, frames, side, G, n, device)
    allocator = est.total - est.runtime
    measured = max(v for v in upd["peak_gib"].values()) if device == "cuda" else None
    upd["estimate_gib"] = round(allocator / 2**30, 2)
    upd["estimate_parts_gib"] = {k: round(v / 2**30, 3) for k, v in est.parts().items()}
    upd["estimate_phase"] = est.peak_phase
    upd["estimate_over_measured"] = round(allocator / 2**30 / measured, 3) if measured else None
    result["update"] = upd
    print(f"update: {upd['update_s']} s, peak {upd['peak_gib']} GiB, estimate {upd['estimate_gib']} GiB", flush=True)

    print(f"logprobs: {result['logprobs']}", flush=True)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    ok = all(math.isfinite(x) for x in (result["decode"]["decode_ms_per_token"], upd["update_s"],
                                        result["logprobs"]["rollout_vs_loss"]["max"]))
    out = Path(args.out) if args.out else HERE / "results" / ("gpu_step_cpu_smoke.json" if smoke else "gpu_step.json")
    print(f"-> {atomic_write_json(out, result)} ({result['wall_s']} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
