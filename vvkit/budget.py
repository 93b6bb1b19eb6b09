"""A memory and token budget for a GRPO run, printed before launch: frames x pixels -> vision tokens, x G x completion
length x model size, optimizer states and activations, roughly (users ask for this before OOMs: Video-R1 #15).

The numbers are upper bounds from the config alone (FramePolicy maxima, full completions), not measurements. Sources:
parameter counts from the Qwen2.5-VL architecture; activation bytes per layer ~34·s·b·h without recomputation and
~2·s·b·h with it (Korthikanti et al. 2022, flash attention); ZeRO sharding divides weights, gradients and optimizer
states by the process count (Rajbhandari et al. 2020).
"""
from __future__ import annotations

import math
import os
from typing import Any

GIB = 1024**3
PATCH, MERGE, TEMPORAL = 14, 2, 2  # Qwen2.5-VL vision patch, spatial merge and temporal patch
TEXT_PROMPT_TOKENS = 128  # chat template + question + options + instruction, roughly


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)


def count_qwen25vl_parameters(model_config: Any) -> dict[str, int]:
    """Parameter count of a Qwen2.5-VL from its config (text decoder, vision tower with merger), without building it."""
    text = _get(model_config, "text_config", None) or model_config
    vision = _get(model_config, "vision_config")
    h, n_layers, inter = _get(text, "hidden_size"), _get(text, "num_hidden_layers"), _get(text, "intermediate_size")
    heads, kv = _get(text, "num_attention_heads"), _get(text, "num_key_value_heads")
    vocab, hd = _get(text, "vocab_size"), _get(text, "hidden_size") // _get(text, "num_attention_heads")
    tied = bool(_get(model_config, "tie_word_embeddings", False))
    attn = h * heads * hd + heads * hd + 2 * (h * kv * hd + kv * hd) + heads * hd * h  # q, k, v with bias; o
    layer = attn + 3 * h * inter + 2 * h  # gated MLP and two RMSNorms
    text_params = vocab * h * (1 if tied else 2) + n_layers * layer + h
    vh, vd, vi = _get(vision, "hidden_size"), _get(vision, "depth"), _get(vision, "intermediate_size")
    out_h = _get(vision, "out_hidden_size")
    patch_in = 3 * TEMPORAL * PATCH * PATCH
    vblock = 3 * vh * vh + 3 * vh + vh * vh + vh + 3 * vh * vi + 2 * vi + vh + 2 * vh  # qkv, proj, gated MLP, norms
    merger = vh + (4 * vh) * (4 * vh) + 4 * vh + (4 * vh) * out_h + out_h
    vision_params = patch_in * vh + vd * vblock + merger
    return {"total": text_params + vision_params, "language": text_params, "vision": vision_params}


def video_tokens(frames: dict | None, nframes_hint: int = 16) -> dict[str, int]:
    """Frames and tokens of one video under a FramePolicy dict: per-frame pixels capped by max_pixels and by
    total_pixels spread over the frames (qwen-vl-utils' rule), patches of 14x14 over temporal pairs, merged 2x2."""
    from vvkit.video import FramePolicy, frame_pixel_cap

    policy = FramePolicy.from_dict(frames or {})
    t = policy.nframes or min(policy.max_frames, max(policy.min_frames, nframes_hint))
    t += t % TEMPORAL
    per_frame = frame_pixel_cap(policy, t)
    unit = (PATCH * MERGE) ** 2
    per_frame = max(unit, int(per_frame // unit) * unit)  # sizes are multiples of 28 x 28
    patches = (t // TEMPORAL) * per_frame // (PATCH * PATCH)
    return {"frames": t, "pixels_per_frame": per_frame, "vision_patches": patches, "llm_tokens": patches // MERGE**2}


def _deepspeed(cfg: Any) -> tuple[int, bool]:
    """ZeRO stage and optimizer offload from the config's deepspeed JSON or the accelerate launch environment."""
    ds = _get(cfg, "deepspeed") or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if isinstance(ds, str) and os.path.exists(ds):
        import json

        with open(ds) as f:
            ds = json.load(f)
    if isinstance(ds, dict):
        z = ds.get("zero_optimization", {})
        return int(z.get("stage", 0)), z.get("offload_optimizer", {}).get("device", "none") == "cpu"
    stage = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0") or 0)
    offload = os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") == "cpu"
    return stage, offload


def uses_deepspeed(cfg: Any) -> bool:
    """Whether the run goes through DeepSpeed: a `deepspeed` config, or `accelerate launch` with a DeepSpeed plugin."""
    return bool(_get(cfg, "deepspeed")) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def weights_in_bf16(bf16: bool, deepspeed: bool, lora: bool) -> bool:
    """The policy's weight dtype rule, shared by `vvkit.train.weight_dtypes` (what is loaded) and the estimate
    below: bf16 weights in a bf16 run under DeepSpeed (fp32 masters sit in its optimizer) or with LoRA (frozen
    base); fp32 weights (under bf16 autocast) for full fine-tuning without DeepSpeed."""
    return bool(bf16) and (bool(deepspeed) or bool(lora))


def estimate_memory(cfg: Any, model_config: Any, world_size: int | None = None, zero_stage: int | None = None,
                    offload: bool | None = None) -> dict[str, Any]:
    """Per-GPU memory estimate (GiB) and token budget of one GRPO step for `cfg` (a TrainConfig) on `model_config`."""
    stage, off = _deepspeed(cfg)
    stage = stage if zero_stage is None else zero_stage
    off = off if offload is None else offload
    world = world_size or int(_get(cfg, "world_size", 1) or 1)
    vid = video_tokens(_get(cfg, "frames"))
    G = int(_get(cfg, "num_generations", 8))
    completion = int(_get(cfg, "max_completion_length", 256))
    seq = TEXT_PROMPT_TOKENS + vid["llm_tokens"] + completion
    per_device = int(_get(cfg, "per_device_train_batch_size", 8))
    accum = int(_get(cfg, "gradient_accumulation_steps", 1))
    steps_per_gen = int(_get(cfg, "steps_per_generation", None) or accum)

    params = count_qwen25vl_parameters(model_config)
    bf16 = bool(_get(cfg, "bf16", False))
    lora = _get(cfg, "lora")
    deepspeed = uses_deepspeed(cfg) if zero_stage is None else zero_stage > 0
    wbytes = 2 if weights_in_bf16(bf16, deepspeed or stage > 0, bool(lora)) else 4  # as vvkit.train loads them
    text = _get(model_config, "text_config", None) or model_config
    h, layers = _get(text, "hidden_size"), _get(text, "num_hidden_layers")
    if lora:  # LoRA on attention projections of the language model: r x (in + out) per target per layer
        r, targets = int(lora.get("r", 8)), len(lora.get("target_modules", ["q_proj", "v_proj"]))
        trainable = layers * targets * r * 2 * h
    else:
        trainable = params["total"] - (params["vision"] if _get(cfg, "freeze_vision", False) else 0)
    shard = world if stage == 3 else 1
    weights = params["total"] * wbytes / shard
    grads = trainable * (4 if lora else wbytes) / (world if stage >= 2 else 1)  # peft keeps adapters in fp32
    master = 4 if wbytes == 2 and not lora else 0  # DeepSpeed's fp32 copy of bf16 weights
    optim = trainable * (8 + master) / (world if stage >= 1 else 1)  # Adam m, v (+ fp32 master) in fp32
    ref_bytes = 2 if bf16 else 4  # the frozen reference model is bf16 in every bf16 run
    ref = params["total"] * ref_bytes / shard if float(_get(cfg, "beta", 0.0)) > 0 and not lora else 0.0

    ckpt = bool(_get(cfg, "activation_checkpointing", False) or _get(cfg, "gradient_checkpointing", False))
    tokens = per_device * seq
    act_text = (2 * tokens * h * layers + 34 * tokens * h) if ckpt else 34 * tokens * h * layers
    vision = _get(model_config, "vision_config")
    vpatches = per_device * vid["vision_patches"]  # every completion re-encodes its prompt's video
    act_vision = 34 * vpatches * _get(vision, "hidden_size") * (1 if ckpt else _get(vision, "depth"))
    activations = (act_text + act_vision) * (2 if bf16 else 4) / 2

    kv_heads = _get(text, "num_key_value_heads")
    head_dim = h // _get(text, "num_attention_heads")
    gen_batch = per_device * steps_per_gen  # TRL generates the whole local generation batch at once
    kv_cache = gen_batch * seq * layers * 2 * kv_heads * head_dim * wbytes  # generate() runs in the weights' dtype

    gpu = weights + grads + ref + max(activations, kv_cache) + (0 if off else optim) + 1.0 * GIB  # + CUDA context
    prompts_per_step = per_device * accum * world / G
    return {
        **{f"video_{k}": v for k, v in vid.items()},
        "sequence_tokens": seq, "num_generations": G, "prompts_per_step": prompts_per_step,
        "completions_per_step": per_device * accum * world, "tokens_per_step": int(per_device * accum * world * seq),
        "parameters": params["total"], "vision_parameters": params["vision"], "trainable_parameters": int(trainable),
        "zero_stage": stage, "offload": off, "world_size": world, "activation_checkpointing": ckpt, "bf16": bf16,
        "weight_bytes": wbytes,
        "weights_gib": weights / GIB, "gradients_gib": grads / GIB, "optimizer_gib": (0 if off else optim) / GIB,
        "optimizer_cpu_gib": (optim if off else 0) / GIB, "reference_gib": ref / GIB,
        "activations_gib": activations / GIB, "generation_kv_gib": kv_cache / GIB, "total_gpu_gib": gpu / GIB,
    }


def format_memory(est: dict[str, Any]) -> str:
    """The estimate as a small aligned table for the log and the notebook."""
    lines = [f"video: {est['video_frames']} frames x {est['video_pixels_per_frame']} px -> {est['video_llm_tokens']} "
             f"tokens; sequence {est['sequence_tokens']} tokens; G={est['num_generations']}, "
             f"{est['prompts_per_step']:g} prompts / {est['completions_per_step']} completions per step",
             f"parameters {est['parameters'] / 1e6:,.1f}M (vision {est['vision_parameters'] / 1e6:,.1f}M, trainable "
             f"{est['trainable_parameters'] / 1e6:,.1f}M); ZeRO-{est['zero_stage']}"
             f"{' + offload' if est['offload'] else ''} over {est['world_size']} process(es)"]
    for key in ("weights", "gradients", "optimizer", "reference", "activations", "generation_kv"):
        lines.append(f"  {key:<14} {est[key + '_gib']:9.2f} GiB")
    if est["optimizer_cpu_gib"]:
        lines.append(f"  {'optimizer(cpu)':<14} {est['optimizer_cpu_gib']:9.2f} GiB")
    lines.append(f"  {'total / GPU':<14} {est['total_gpu_gib']:9.2f} GiB  (upper bound; activations vs KV cache: max)")
    return "\n".join(lines)


def fits(est: dict[str, Any], gpu_gib: float) -> bool:
    """Whether the estimate fits a GPU of `gpu_gib` GiB with 10% headroom."""
    return math.isfinite(est["total_gpu_gib"]) and est["total_gpu_gib"] <= 0.9 * gpu_gib
