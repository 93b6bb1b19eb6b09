"""The memory a GRPO step needs per device, from the config alone, and the launch guard that holds it against the
device (users ask for this before OOMs: Video-R1 #15).

One step has three phases, and the peak is the largest of them on top of what stays resident (weights, optimizer
states, the reference model): **generation** (TRL 1.16 generates the whole local generation batch in one HF
`generate`: under ZeRO-3 every rank first gathers the full bf16 weights; the prefill runs the vision tower over every
video of the batch and the decoder over every prompt token, then the KV cache grows to the full completion),
**update** (per micro-batch: the stored inputs of every checkpointed decoder layer and vision block, one layer
recomputed with its backward, and TRL's fused LM head, which never materialises the logits but keeps a
4,096 x 32,768 tile, fp32 gradient accumulators and, on devices without Triton, the whole tile's softmax
temporaries), and the **optimizer step**. Parts are counted per token / patch from the Qwen2.5-VL layer code of
transformers 5.24 (gated MLPs at their intermediate width, RMSNorm's fp32 upcast, M-RoPE), so the sum is an upper
bound, not a fit; `benchmarks/bench_memory.py` holds it against measured steps (its one fixed term, the CPU
process's own runtime, is set from those runs; on a GPU the CUDA context takes its place). ZeRO sharding divides
weights, gradients and optimizer states by the process count (Rajbhandari et al. 2020); activation recomputation
follows Korthikanti et al. 2022.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from vvkit.config import ConfigError

GIB = 1024**3
PATCH, MERGE, TEMPORAL = 14, 2, 2  # Qwen2.5-VL vision patch, spatial merge and temporal patch
PATCH_VALUES = 3 * TEMPORAL * PATCH * PATCH  # 1,176 pixel values per vision patch
TEXT_PROMPT_TOKENS = 128  # chat template + question + options + instruction, roughly
CUDA_CONTEXT = 1 * GIB  # CUDA context, cuBLAS workspaces and kernels: outside torch's allocator, ~0.5-1 GiB
CPU_RUNTIME = 256 * 2**20  # CPU: trainer, processor, code pages and allocator arenas a step adds (~230 MiB measured)
LOGPROB_TOKENS, LOGPROB_VOCAB = 4096, 32768  # TRL's fused LM-head tile (trl/kernels/chunked_logprob.py)
HEADROOM = 0.9  # the guard keeps 10% of the device for the allocator's fragmentation


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)
    return default if value is None else value


def count_qwen25vl_parameters(model_config: Any) -> dict[str, int]:
    """Parameter count of a Qwen2.5-VL from its config (text decoder, vision tower with merger), without building it."""
    s = Shapes.of(model_config)
    attn = s.h * s.qd + s.qd + 2 * (s.h * s.kvd + s.kvd) + s.qd * s.h  # q, k, v with bias; o
    text_params = s.vocab * s.h * (1 if s.tied else 2) + s.layers * (attn + 3 * s.h * s.inter + 2 * s.h) + s.h
    vh, vi = s.vh, s.vi
    vblock = 3 * vh * vh + 3 * vh + vh * vh + vh + 3 * vh * vi + 2 * vi + vh + 2 * vh  # qkv, proj, gated MLP, norms
    merger = vh + (4 * vh) * (4 * vh) + 4 * vh + (4 * vh) * s.out_h + s.out_h
    vision_params = PATCH_VALUES * vh + s.depth * vblock + merger
    return {"total": text_params + vision_params, "language": text_params, "vision": vision_params,
            "text_layer": attn + 3 * s.h * s.inter, "vision_block": vblock}


@dataclass(frozen=True)
class Shapes:
    """The sizes of a Qwen2.5-VL config that memory depends on."""

    h: int
    layers: int
    inter: int
    qd: int  # heads x head_dim
    kvd: int  # kv heads x head_dim
    vocab: int
    tied: bool
    vh: int
    depth: int
    vi: int
    vhd: int  # vision head_dim
    out_h: int

    @classmethod
    def of(cls, model_config: Any) -> Shapes:
        text = _get(model_config, "text_config", None) or model_config
        vision = _get(model_config, "vision_config")
        h, heads = _get(text, "hidden_size"), _get(text, "num_attention_heads")
        hd = _get(text, "head_dim", None) or h // heads
        vh = _get(vision, "hidden_size")
        return cls(h=h, layers=_get(text, "num_hidden_layers"), inter=_get(text, "intermediate_size"), qd=heads * hd,
                   kvd=_get(text, "num_key_value_heads") * hd, vocab=_get(text, "vocab_size"),
                   tied=bool(_get(model_config, "tie_word_embeddings", False)), vh=vh, depth=_get(vision, "depth"),
                   vi=_get(vision, "intermediate_size"), vhd=vh // _get(vision, "num_heads"),
                   out_h=_get(vision, "out_hidden_size"))


def video_tokens(frames: dict | None, nframes_hint: int = 16) -> dict[str, int]:
    """Frames and tokens of one video under a FramePolicy dict: per-frame pixels capped by max_pixels and by
    total_pixels spread over the frames (qwen-vl-utils' rule), patches of 14x14 over temporal pairs, merged 2x2.
    An fps frame_policy without `nframes` is counted at `nframes_hint` frames (within min/max_frames)."""
    from vvkit.video import FramePolicy, frame_pixel_cap

    frame_policy = FramePolicy.from_dict(frames or {})
    t = frame_policy.nframes or min(frame_policy.max_frames, max(frame_policy.min_frames, nframes_hint))
    t += t % TEMPORAL
    per_frame = frame_pixel_cap(frame_policy, t)
    unit = (PATCH * MERGE) ** 2
    per_frame = max(unit, int(per_frame // unit) * unit)  # sizes are multiples of 28 x 28
    patches = (t // TEMPORAL) * per_frame // (PATCH * PATCH)
    return {"frames": t, "pixels_per_frame": per_frame, "vision_patches": patches, "llm_tokens": patches // MERGE**2}


def _deepspeed(cfg: Any) -> tuple[dict, int, bool, bool]:
    """(zero_optimization section, ZeRO stage, optimizer offload, parameter offload) from the config's deepspeed
    JSON or the accelerate launch environment."""
    ds = _get(cfg, "deepspeed") or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if isinstance(ds, str) and os.path.exists(ds):
        with open(ds) as f:
            ds = json.load(f)
    if isinstance(ds, dict):
        z = ds.get("zero_optimization", {})
        return (z, int(z.get("stage", 0)), z.get("offload_optimizer", {}).get("device", "none") == "cpu",
                z.get("offload_param", {}).get("device", "none") == "cpu")
    stage = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0") or 0)
    off_opt = os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") == "cpu"
    off_par = os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") == "cpu"
    return {}, stage, off_opt, off_par


def uses_deepspeed(cfg: Any) -> bool:
    """Whether the run goes through DeepSpeed: a `deepspeed` config, or `accelerate launch` with a DeepSpeed plugin."""
    return bool(_get(cfg, "deepspeed")) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def weights_in_bf16(bf16: bool, deepspeed: bool, lora: bool) -> bool:
    """The policy's weight dtype rule, shared by `vvkit.train.weight_dtypes` (what is loaded) and the estimate
    below: bf16 weights in a bf16 run under DeepSpeed (fp32 masters sit in its optimizer) or with LoRA (frozen
    base); fp32 weights (under bf16 autocast) for full fine-tuning without DeepSpeed."""
    return bool(bf16) and (bool(deepspeed) or bool(lora))


def lora_parameters(lora: dict, s: Shapes) -> int:
    """peft adapter parameters, r x (in + out) per targeted linear: q/k/v/o_proj of the decoder (the vision tower
    names its attention qkv/proj), gate/up/down_proj of the decoder and of every vision block."""
    r = int(lora.get("r", 8))
    sizes = {"q_proj": [(s.h, s.qd)] * s.layers, "k_proj": [(s.h, s.kvd)] * s.layers,
             "v_proj": [(s.h, s.kvd)] * s.layers, "o_proj": [(s.qd, s.h)] * s.layers,
             "gate_proj": [(s.h, s.inter)] * s.layers + [(s.vh, s.vi)] * s.depth,
             "up_proj": [(s.h, s.inter)] * s.layers + [(s.vh, s.vi)] * s.depth,
             "down_proj": [(s.inter, s.h)] * s.layers + [(s.vi, s.vh)] * s.depth}
    targets = lora.get("target_modules", ["q_proj", "v_proj"])
    targets = list(sizes) if targets == "all-linear" else targets
    return sum(r * (i + o) for t in targets for i, o in sizes.get(t, [(s.h, s.h)] * s.layers))


@dataclass(frozen=True)
class TokenBudget:
    """What one step processes, per device unless named per step."""

    frames: int
    pixels_per_frame: int
    vision_patches: int  # per video
    video_tokens: int  # per video, after the 2x2 merge
    prompt_tokens: int
    completion_tokens: int
    num_generations: int
    generation_batch: int  # completions generated at once per device
    micro_batch: int  # completions per forward/backward
    prompts_per_step: float
    completions_per_step: int


@dataclass(frozen=True)
class Generation:
    """One `generate` over the generation batch, at its peak moment (`moment`: the prefill or the last token)."""

    gathered_weights: int  # ZeRO-3: the full bf16 weights each rank gathers to generate
    kv_cache: int
    transients: int  # prefill: pixels, vision tower, decoder over every prompt token; decode: logits, cache growth
    moment: str

    @property
    def total(self) -> int:
        return self.gathered_weights + self.kv_cache + self.transients


@dataclass(frozen=True)
class Update:
    """Forward and backward of one micro-batch (the loss pass; the no-grad old/reference passes need less), at its
    peak `moment`. Without accumulated gradients (one micro-batch per step, no DeepSpeed) the backward fills the
    gradients while it frees the activations, so the peak is at its start (every activation, no gradient) or where
    it reaches the vision tower (every gradient, the tower's activations): each layer is alike, so the sum in
    between moves one way per stack and the larger end bounds it."""

    gradients: int
    text_activations: int  # checkpointed layer inputs (or every activation without checkpointing), embeddings
    vision_activations: int  # checkpointed block inputs (or every activation), patch embedding, merger
    layer_backward: int  # the layer being recomputed, with its backward temporaries
    logits: int  # TRL's fused LM head over the scored tokens: one tile, saved hidden states, fp32 gradients
    autocast_copies: int  # bf16 copies of fp32 weights cached by autocast during the forward
    zero3_buffers: int  # ZeRO-3: parameters gathered per module and gradient reduce buckets
    moment: str

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "moment")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device at the peak of one GRPO step: resident parts, the largest phase, the runtime. `parts()`
    names every term of `total`; `host` is what DeepSpeed offloads to CPU memory (not in `total`)."""

    weights: int
    gradients: int
    optimizer: int
    reference: int
    generation: Generation
    update: Update
    step: int  # optimizer step: DeepSpeed's fp32 gradients of one sub-group
    runtime: int  # the CUDA context; on the CPU, the process's own runtime
    host: int
    tokens: TokenBudget
    setup: dict

    def phases(self) -> dict[str, int]:
        """Each phase's bytes with what stays resident through it (the runtime aside)."""
        resident = self.weights + self.optimizer + self.reference
        return {"generation": resident + self._generation_gradients() + self.generation.total,
                "update": resident + self.update.total, "step": resident + self.gradients + self.step}

    @property
    def peak_phase(self) -> str:
        phases = self.phases()
        return max(phases, key=phases.get)

    def _generation_gradients(self) -> int:
        """`zero_grad` frees the gradients before generation, except DeepSpeed's partitions, which stay allocated."""
        return self.gradients if self.setup["zero_stage"] > 0 else 0

    def parts(self) -> dict[str, int]:
        """The terms of `total`, named, in bytes."""
        phase = self.peak_phase
        grads = {"generation": self._generation_gradients(), "update": self.update.gradients}.get(phase, self.gradients)
        out = {"weights": self.weights, "gradients": grads, "optimizer": self.optimizer, "reference": self.reference}
        if phase == "generation":
            out.update({"gathered weights": self.generation.gathered_weights, "kv cache": self.generation.kv_cache,
                        f"{self.generation.moment} transients": self.generation.transients})
        elif phase == "update":
            out.update({k.replace("_", " "): v for k, v in asdict(self.update).items()
                        if k not in ("gradients", "moment")})
        else:
            out["optimizer step"] = self.step
        out["cuda context" if self.setup["device"] == "cuda" else "cpu runtime"] = self.runtime
        return out

    @property
    def total(self) -> int:
        return sum(self.parts().values())

    def as_dict(self) -> dict[str, Any]:
        """Every part in bytes, the phases' totals, the token budget and the setup, for JSON results."""
        return {"total": self.total, "peak_phase": self.peak_phase, "parts": self.parts(),
                "phases": {k: v + self.runtime for k, v in self.phases().items()},
                "generation": asdict(self.generation), "update": asdict(self.update), "host": self.host,
                "tokens": asdict(self.tokens), "setup": self.setup}


def estimate_memory(cfg: Any, model_config: Any, world_size: int | None = None, zero_stage: int | None = None,
                    offload: bool | None = None, device: str | None = None) -> MemoryEstimate:
    """Per-device memory of one GRPO step for `cfg` (a TrainConfig or a dict of its fields) on `model_config` (a
    Qwen2.5-VL config); `device` "cuda" (default unless `cfg.use_cpu`) or "cpu" (no CUDA context; TRL's LM head
    folds its tiles in torch and scores every position, not only the completion's; the process's own runtime
    replaces the CUDA context)."""
    zero, stage, off_opt, off_par = _deepspeed(cfg)
    stage = stage if zero_stage is None else zero_stage
    off_opt = off_opt if offload is None else offload
    off_par = off_par and stage == 3
    world = world_size or int(_get(cfg, "world_size", 1))
    device = device or ("cpu" if _get(cfg, "use_cpu", False) else "cuda")
    s, params = Shapes.of(model_config), count_qwen25vl_parameters(model_config)
    P = params["total"]
    vid = video_tokens(_get(cfg, "frames"))
    G = int(_get(cfg, "num_generations", 8))
    C = int(_get(cfg, "max_completion_length", 256))
    Sp = TEXT_PROMPT_TOKENS + vid["llm_tokens"] + 2  # + <|vision_start|>, <|vision_end|>
    S, Np = Sp + C, vid["vision_patches"]
    b = int(_get(cfg, "per_device_train_batch_size", 8))
    accum = int(_get(cfg, "gradient_accumulation_steps", 1))
    B = b * int(_get(cfg, "steps_per_generation", accum))  # TRL generates the local generation batch at once

    bf16, lora = bool(_get(cfg, "bf16", False)), _get(cfg, "lora")
    deepspeed = stage > 0 if zero_stage is not None else (uses_deepspeed(cfg) or stage > 0)
    wb = 2 if weights_in_bf16(bf16, deepspeed, bool(lora)) else 4  # as vvkit.train loads them
    ab = 2 if bf16 else 4  # activations: bf16 autocast or bf16 weights
    adapters = lora_parameters(lora, s) if lora else 0
    trainable = adapters or P - (params["vision"] if _get(cfg, "freeze_vision", False) else 0)
    shard = world if stage == 3 else 1

    # ---- resident ----
    weights = (0 if off_par else P * wb // shard) + adapters * 4  # peft keeps adapters in fp32
    if lora:
        grads = adapters * 4
    elif deepspeed and bf16:  # bf16 partitions; the fp32 copy of a sub-group is made at the step
        grads = trainable * 2 // (world if stage >= 2 else 1)
    else:
        grads = trainable * wb // (world if stage >= 2 else 1)
    master = 4 if deepspeed and wb == 2 and not lora else 0  # DeepSpeed's fp32 copy of bf16 weights
    optim = trainable * (8 + master) // (world if stage >= 1 else 1)  # Adam m, v (+ fp32 master) in fp32
    ref = P * (2 if bf16 else 4) // shard if float(_get(cfg, "beta", 0.0)) > 0 and not lora else 0

    # ---- generation: prefill of B prompts (vision tower, then the decoder), then decoding to S tokens ----
    kv_token = s.layers * 2 * s.kvd * wb  # generate() runs in the weights' dtype
    gathered = P * 2 if stage == 3 and _get(cfg, "ds3_gather_for_generation", True) else 0
    pixels = B * Np * PATCH_VALUES * 4  # fp32 pixel values of every video of the batch
    vision_prefill = B * Np * (4 * s.vh * wb + 2 * s.vh * 4 + 3 * s.vi * wb)  # one block: x, norm, qkv, 3 MLP widths
    text_prefill = B * Sp * ((4 * s.h + 5 * s.qd) * wb + 2 * s.h * 4 + 3 * s.inter * wb + Sp)  # + the 4-D mask
    prefill = pixels + B * Sp * 2 * s.h * wb + max(vision_prefill, text_prefill)
    decode = B * S * kv_token // s.layers + 4 * B * s.vocab * 4  # one layer's cache copy as it grows; fp32 scores
    generation = (Generation(gathered, B * Sp * kv_token, prefill, "prefill") if B * Sp * kv_token + prefill
                  >= B * S * kv_token + decode else Generation(gathered, B * S * kv_token, decode, "decode"))

    # ---- update: one micro-batch of b sequences, b videos ----
    ckpt = bool(_get(cfg, "activation_checkpointing", False) or _get(cfg, "gradient_checkpointing", False))
    T, Pb = b * S, b * Np
    autocast = bf16 and wb == 4  # fp32 weights under bf16 autocast: an fp32 residual stream, fp32 rotary outputs
    # Saved tensors per token / patch, counted with torch's saved-tensor hooks on transformers 5.24's Qwen2.5-VL
    # layers (fp32, bf16 and autocast); each formula is within +10% of that count.
    text_layer = ((4 * s.inter + 4 * s.qd + 4 * s.kvd) * ab + 2 * s.h * (4 + ab) + s.h * wb  # MLP, attention, norms
                  + (2 * (s.qd + s.kvd + s.h) * 4 if autocast else 0))
    vision_block = (4 * s.vi + 10 * s.vh) * ab + 3 * s.vh * 4 + s.vh * wb + (2 * s.vh * 4 if autocast else 0)
    text_outside = T * (2 * s.h * wb + s.h * (4 + ab))  # embeddings, merged video features, final norm
    text_act = T * s.layers * (s.h * wb if ckpt else text_layer) + text_outside
    vision_act = Pb * (s.depth * (s.vh * wb if ckpt else vision_block)  # + pixels, patch embedding, windows, merger
                       + PATCH_VALUES * (4 + (ab if ab != 4 else 0)) + 8 * s.vh * ab + 3 * s.vhd * 4
                       + (2 * s.vh * 4 if autocast else 0))
    text_back = T * ((text_layer if ckpt else 0) + (3 * s.inter + 4 * s.h) * ab)  # + gradient temporaries
    vision_back = Pb * ((vision_block if ckpt else 0) + (3 * s.vi + 4 * s.vh) * ab)
    triton = device == "cuda"
    N = b * C if triton else b * (S - 1)  # scored positions: the completion's (Triton) or every one (torch fold)
    tile = min(N, LOGPROB_TOKENS) * min(s.vocab, LOGPROB_VOCAB)
    head_trainable = not lora
    logits = (tile * (ab if triton else 12 * 4)  # the tile; the torch fold's backward holds ~12 fp32 tiles
              + N * s.h * (ab + 4 + ab)  # saved hidden states, their fp32 gradient and its cast
              + (s.vocab * s.h * 4 if head_trainable else 0)  # fp32 lm_head gradient accumulator
              + (min(s.vocab, LOGPROB_VOCAB) * s.h * 2 if wb == 4 and bf16 else 0))  # bf16 weight slice
    zero3 = 0
    if stage == 3:
        live = s.vocab * s.h + max(params["text_layer"], params["vision_block"]) + s.h * s.h  # + prefetch bucket
        zero3 = 2 * min(live, int(float(zero.get("stage3_max_live_parameters", 1e9)))) + 2 * 2 * s.h * s.h
    autocast_copies = trainable * 2 if autocast else 0
    if stage > 0 or accum > 1:  # gradients held through the whole backward
        update = Update(grads, text_act, vision_act, max(text_back, vision_back), logits, autocast_copies, zero3,
                        "backward")
    else:
        start = Update(0, text_act, vision_act, text_back, logits, autocast_copies, zero3, "backward start")
        tower = Update(grads, text_outside, vision_act, vision_back, 0, 0, zero3, "vision backward")
        update = max(start, tower, key=lambda u: u.total)

    # ---- optimizer step ----
    sub_group = int(float(zero.get("sub_group_size", 1e9)))
    step = 4 * min(sub_group, trainable // world) if deepspeed and stage >= 1 and wb == 2 and not off_opt else 0
    host = (optim if off_opt else 0) + (P * wb // shard if off_par else 0)
    tokens = TokenBudget(vid["frames"], vid["pixels_per_frame"], Np, vid["llm_tokens"], Sp, C, G, B, b,
                         b * accum * world / G, b * accum * world)
    setup = {"device": device, "zero_stage": stage, "offload_optimizer": off_opt, "offload_params": off_par,
             "world_size": world, "bf16": bf16, "weight_bytes": wb, "activation_checkpointing": ckpt,
             "lora": bool(lora), "parameters": P, "vision_parameters": params["vision"],
             "trainable_parameters": int(trainable)}
    return MemoryEstimate(weights, grads, 0 if off_opt else optim, ref, generation, update, step,
                          CUDA_CONTEXT if device == "cuda" else CPU_RUNTIME, host, tokens, setup)


def format_memory(est: MemoryEstimate) -> str:
    """The estimate as an aligned table whose lines add up to its total."""
    t, u = est.tokens, est.setup
    moment = {"generation": f" ({est.generation.moment})", "update": f" ({est.update.moment})"}
    lines = [f"video: {t.frames} frames x {t.pixels_per_frame} px -> {t.video_tokens} tokens; prompt {t.prompt_tokens} "
             f"+ completion {t.completion_tokens} tokens; G={t.num_generations}, {t.prompts_per_step:g} prompts / "
             f"{t.completions_per_step} completions per step; {t.generation_batch} generated at once, "
             f"{t.micro_batch} per backward",
             f"parameters {u['parameters'] / 1e6:,.1f}M (vision {u['vision_parameters'] / 1e6:,.1f}M, trainable "
             f"{u['trainable_parameters'] / 1e6:,.1f}M); ZeRO-{u['zero_stage']}"
             f"{' + offload' if u['offload_optimizer'] else ''} over {u['world_size']} process(es); peak: "
             f"{est.peak_phase}{moment.get(est.peak_phase, '')}"]
    lines += [f"  {name:<22} {value / GIB:9.2f} GiB" for name, value in est.parts().items()]
    lines.append(f"  {'total / ' + ('GPU' if u['device'] == 'cuda' else 'process'):<22} {est.total / GIB:9.2f} GiB  "
                 "(upper bound)")
    other = {k: v for k, v in est.as_dict()["phases"].items() if k != est.peak_phase}
    lines.append("  other phases: " + ", ".join(f"{k} {v / GIB:.2f} GiB" for k, v in other.items()))
    if est.host:
        lines.append(f"  {'offloaded to CPU':<22} {est.host / GIB:9.2f} GiB  (host memory, not in the total)")
    return "\n".join(lines)


def fits(est: MemoryEstimate, gpu_gib: float) -> bool:
    """Whether the estimate fits a device of `gpu_gib` GiB with 10% headroom."""
    return math.isfinite(est.total) and est.total <= HEADROOM * gpu_gib * GIB


def device_memory(cfg: Any) -> int | None:
    """Total memory of the CUDA device this process trains on, or None (CPU runs are not guarded)."""
    import torch

    if _get(cfg, "use_cpu", False) or not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)


def check_fits(cfg: Any, model_config: Any, device_memory_bytes: int | None = None, **kw: Any) -> MemoryEstimate:
    """The launch guard: the estimate for `cfg` held against the device's memory (from torch.cuda unless given; no
    guard on the CPU); raises ConfigError naming what to change when it does not fit (each with its estimate)."""
    est = estimate_memory(cfg, model_config, **kw)
    total = device_memory(cfg) if device_memory_bytes is None else device_memory_bytes
    if total is None or fits(est, total / GIB):
        return est
    view = {f: _get(cfg, f) for f in ("frames", "num_generations", "max_completion_length", "bf16", "beta",
                                       "per_device_train_batch_size", "gradient_accumulation_steps",
                                       "steps_per_generation", "activation_checkpointing", "freeze_vision", "lora",
                                       "use_cpu")}
    world = kw.get("world_size") or int(_get(cfg, "world_size", 1))
    options = []

    def option(text: str, changed: dict, **over: Any) -> None:
        alt = estimate_memory({**view, **changed}, model_config, **{**kw, **over})
        verdict = "fits" if fits(alt, total / GIB) else "still too large"
        options.append(f"{text}: {alt.total / GIB:.1f} GiB, {verdict}")

    if not view["lora"]:
        option("LoRA on a bf16 base (grpo_training.lora: {r: 64, lora_alpha: 128, target_modules: [q_proj, k_proj, "
               "v_proj, o_proj]}, bf16: true; e.g. params/paper_1gpu.yaml)",
               {"lora": {"r": 64, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}, "bf16": True})
    if est.setup["zero_stage"] < 3:
        n = world if world > 1 else 8
        option(f"ZeRO-3 over {n} GPUs (accelerate launch --config_file params/accelerate/zero3.yaml -m vvkit.train "
               "--config <params>)", {"bf16": True}, world_size=n, zero_stage=3, offload=False)
    frames = dict(view["frames"] or {})
    if est.tokens.frames > 2:  # a valid policy: min_frames lowered with max_frames (FramePolicy checks the order)
        n = max(2, est.tokens.frames // 2)
        fewer = {**frames, "nframes": n, "max_frames": n, "min_frames": min(n, frames.get("min_frames", n))}
        option(f"fewer frames (frames.nframes / frames.max_frames: {n})", {"frames": fewer})
    half = est.tokens.pixels_per_frame // 2
    smaller = {**frames, "max_pixels": half, **({"min_pixels": min(frames["min_pixels"], half)}
                                                 if "min_pixels" in frames else {})}
    option(f"fewer pixels (frames.max_pixels: {half})", {"frames": smaller})
    option(f"a shorter completion (grpo_training.max_completion_length: {est.tokens.completion_tokens // 2})",
           {"max_completion_length": est.tokens.completion_tokens // 2})
    raise ConfigError(
        f"this run needs about {est.total / GIB:.1f} GiB per device ({est.peak_phase} phase) but the device has "
        f"{total / GIB:.1f} GiB ({HEADROOM:.0%} usable):\n{format_memory(est)}\nChange one of:\n  - "
        + "\n  - ".join(options))
