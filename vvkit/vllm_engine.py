"""vLLM as the second generation engine, beside HF `generate` (`vvkit.rollout.generate`): the same encoded prompts,
the same frames and the same sampled fps, with a paged, batched engine (the rollout engine of verl, EasyR1 and TRL's
`vllm_mode: colocate`).

    EncodedPrompt + clips ──► {prompt_token_ids, multi_modal_data: {"video": (frames, metadata)}} ──► generate

- Video goes in as (frames, metadata) from the one FramePolicy with `do_sample_frames=False`, so vLLM's Qwen2.5-VL
  processor derives `second_per_grid_ts = temporal_patch / sampled fps` exactly as the HF path does (a bare array is
  refused by vLLM: "Video metadata is required").
- Prompt ids go in with each video's placeholder run collapsed to one <|video_pad|>; vLLM expands it again, and
  `generate_ids` checks that the expanded ids equal the HF ids (the ones the GRPO loss scores).
- vLLM ignores the model's `suppress_tokens`: the vision placeholders get `logit_bias` -100 instead.
- Weights are pushed with the worker's `reload_weights` (TRL's `model_runner.model.load_weights` fails on the CPU
  backend, whose weights are prepacked), then the encoder and prefix caches are reset (stale vision features and KV
  blocks of the old weights otherwise; vLLM fails with "Encoder cache miss" without the first).

vllm is imported inside the functions: vvkit's own environment does not carry it (`make vllm-env`, docs/vllm.md).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from vvkit.rollout import Clips, EncodedPrompt, never_sampled, special_ids, stop_token_ids

ENGINES = ("hf", "vllm")
BANNED_BIAS = -100.0  # vLLM's logit_bias range is [-100, 100]: enough to never sample a placeholder


def vllm_available() -> bool:
    """Whether vllm is importable (it lives in .venv-vllm, not in vvkit's .venv)."""
    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    if not vllm_available():
        raise ImportError("engine 'vllm' needs vllm, which vvkit's .venv does not carry (its torch and transformers "
                          "pins contradict vvkit's): build .venv-vllm with `make vllm-env` and run from it, or set "
                          "the engine back to 'hf' / use_vllm: false (docs/vllm.md)")


def build_engine(policy_dir: str | os.PathLike, *, max_model_len: int = 4096, seed: int = 0, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.3, max_num_seqs: int = 64, external_launcher: bool = False,
                 enable_sleep_mode: bool = False, **llm_kwargs: Any) -> Any:
    """A vLLM `LLM` over a policy folder (weights, tokenizer, processor files), as TRL's colocate mode builds it:
    processed log-probs (after temperature and logit bias) for its importance-sampling correction, and with
    `external_launcher` one engine per torchrun rank inside the training process (no extra workers)."""
    require_vllm()
    # The engine core in this process, as a colocated rollout engine wants it (no engine process to spawn, no
    # `if __name__ == "__main__"` guard needed in notebooks and scripts).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if not torch.cuda.is_available():  # CPU backend: a 1 GiB KV cache (it takes 6 GiB unset)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    kwargs: dict[str, Any] = dict(model=str(policy_dir), dtype=dtype, max_model_len=max_model_len, seed=seed,
                                  max_num_seqs=max_num_seqs, limit_mm_per_prompt={"image": 0, "video": 1},
                                  logprobs_mode="processed_logprobs", enable_sleep_mode=enable_sleep_mode)
    if torch.cuda.is_available():
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    if external_launcher:
        kwargs["distributed_executor_backend"] = "external_launcher"
    kwargs.update(llm_kwargs)
    return LLM(**kwargs)


# ---- inputs ------------------------------------------------------------------------------------------------------
def video_item(frames: np.ndarray, fps: float) -> tuple[np.ndarray, dict]:
    """(frames, metadata) for vLLM: the clip's real sampled fps, every frame kept (`do_sample_frames=False`: the
    FramePolicy already sampled them)."""
    if not fps > 0:
        raise ValueError(f"video_item: fps={fps}; pass the clip's positive sampled fps (Clip.sampled_fps)")
    t = int(frames.shape[0])
    return frames, {"fps": float(fps), "duration": t / float(fps), "total_num_frames": t,
                    "frames_indices": list(range(t)), "video_backend": "opencv", "do_sample_frames": False}


def collapse_placeholders(ids: Sequence[int], placeholder: int) -> list[int]:
    """The ids with every run of `placeholder` replaced by one, the form vLLM's processor expands itself."""
    out: list[int] = []
    for i in ids:
        if not (i == placeholder and out and out[-1] == placeholder):
            out.append(int(i))
    return out


def engine_prompt(encoded: EncodedPrompt, clips: Clips, video_token_id: int) -> dict:
    """One vLLM prompt: collapsed ids plus the clips as (frames, metadata); a text-only prompt has no video."""
    if not encoded.has_video:
        return {"prompt_token_ids": list(encoded.input_ids)}
    if len(clips) != len(encoded.video_grid_thw):
        raise ValueError(f"{len(clips)} clips for a prompt encoded with {len(encoded.video_grid_thw)} videos")
    items = [video_item(f, fps) for f, fps in clips]
    return {"prompt_token_ids": collapse_placeholders(encoded.input_ids, video_token_id),
            "multi_modal_data": {"video": items[0] if len(items) == 1 else items}}


def sampling_params(processor: Any, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 64,
                    top_p: float = 1.0, top_k: int = 0, logprobs: int | None = None) -> Any:
    """vLLM's SamplingParams matching `vvkit.rollout.generate`: greedy at temperature 0, top_k 0 = off, the same stop
    ids, and the vision placeholders banned by logit bias (vLLM ignores `suppress_tokens`)."""
    from vllm import SamplingParams

    return SamplingParams(n=n, temperature=float(temperature), top_p=float(top_p) if temperature > 0 else 1.0,
                          top_k=int(top_k), max_tokens=int(max_new_tokens),
                          stop_token_ids=stop_token_ids(processor.tokenizer), logprobs=logprobs,
                          logit_bias={int(i): BANNED_BIAS for i in never_sampled(processor)},
                          skip_special_tokens=True)


def engine_features(llm: Any, prompt: dict) -> tuple[list[Any], list[int]]:
    """(multimodal features, expanded prompt ids) that the engine derives from one prompt, without generating: what
    its M-RoPE positions are computed from (`video_grid_thw`, `second_per_grid_ts`), for checks against HF."""
    from vllm import SamplingParams

    req = llm.llm_engine.input_processor.process_inputs("vvkit-probe", prompt, SamplingParams(max_tokens=1),
                                                        supported_tasks=("generate",))
    return list(req.mm_features or []), list(req.prompt_token_ids)


# ---- generation --------------------------------------------------------------------------------------------------
def _groups(encoded: Sequence[EncodedPrompt], clips: Sequence[Clips]) -> list[tuple[int, int]]:
    """[start, end) runs of the same prompt (TRL repeats each prompt G times in a row): one request with n = G."""
    runs: list[tuple[int, int]] = []
    for i, e in enumerate(encoded):
        if runs and encoded[runs[-1][0]] is e and clips[runs[-1][0]] is clips[i]:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def generate_ids(llm: Any, processor: Any, encoded: Sequence[EncodedPrompt], clips: Sequence[Clips], n: int = 1,
                 temperature: float = 0.0, max_new_tokens: int = 64, top_p: float = 1.0, top_k: int = 0,
                 logprobs: bool = False) -> list[tuple[list[int], list[float] | None]]:
    """Completion ids (stop token kept, as TRL's HF path keeps it) and, with `logprobs`, the sampled tokens' processed
    log-probs: `n` per encoded prompt, in order. Consecutive copies of one prompt (same object) are one request with
    n x copies samples, so the engine encodes the video once. Randomness comes from the engine's seed (a per-request
    seed is refused by the CPU backend: "CPU Generator does not use offset")."""
    if len(encoded) != len(clips):
        raise ValueError(f"{len(encoded)} encoded prompts but {len(clips)} clip lists")
    video_id, _ = special_ids(processor)
    runs = _groups(encoded, clips)
    prompts = [engine_prompt(encoded[s], clips[s], video_id) for s, _ in runs]
    params = [sampling_params(processor, n=n * (e - s), temperature=temperature, max_new_tokens=max_new_tokens,
                              top_p=top_p, top_k=top_k, logprobs=0 if logprobs else None)
              for s, e in runs]
    outputs = llm.generate(prompts, sampling_params=params, use_tqdm=False)
    out: list[tuple[list[int], list[float] | None]] = []
    for (s, _), res in zip(runs, outputs):
        if list(res.prompt_token_ids) != list(encoded[s].input_ids):
            raise RuntimeError("vLLM expanded the prompt to other ids than the HF processor "
                               f"({len(res.prompt_token_ids)} vs {len(encoded[s].input_ids)} tokens): the loss would "
                               "score another prompt than the one sampled")
        for c in res.outputs:
            lps = [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)] if logprobs else None
            out.append((list(c.token_ids), lps))
    return out


def generate(llm: Any, processor: Any, encoded: Sequence[EncodedPrompt], clips: Sequence[Clips], n: int = 1,
             temperature: float = 0.0, max_new_tokens: int = 64, top_p: float = 1.0) -> list[list[str]]:
    """`vvkit.rollout.generate` on the engine: `n` decoded completions per encoded prompt; temperature 0 = greedy."""
    ids = generate_ids(llm, processor, encoded, clips, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                       top_p=top_p)
    texts = processor.tokenizer.batch_decode([i for i, _ in ids], skip_special_tokens=True)
    return [texts[i:i + n] for i in range(0, len(texts), n)]


# ---- weights -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _gathered(params: list[torch.nn.Parameter]) -> Iterator[None]:
    """ZeRO-3 shards gathered whole for the duration (a no-op without DeepSpeed partitioning)."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            yield
    else:
        yield


def engine_weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The policy's weights under checkpoint names, copied off the model: ZeRO-3 shards gathered first, LoRA
    adapters merged into the base weights and their own tensors left out (as TRL's `_iter_named_params`)."""
    model = getattr(model, "module", model)  # DDP / DeepSpeed engine wrappers
    params = list(model.parameters())
    peft = hasattr(model, "merge_adapter") and hasattr(model, "peft_config")
    with _gathered(params):
        if peft:
            model.merge_adapter()
        try:
            out = []
            for name, p in model.named_parameters():
                if peft:
                    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
                    if model.prefix in name or "original_module" in name:
                        continue
                    name = name.replace("modules_to_save.default.", "")
                out.append((name, p.detach().clone()))
        finally:
            if peft:
                model.unmerge_adapter()
    return out


def push_weights(llm: Any, model: torch.nn.Module) -> float:
    """Load the policy's current weights into the engine, then drop caches built with the old ones; seconds taken."""
    start = time.perf_counter()
    weights = engine_weights(model)
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
    llm.llm_engine.reset_encoder_cache()
    llm.reset_prefix_cache()
    return time.perf_counter() - start


# ---- one engine per process, for evaluation ---------------------------------------------------------------------
_CURRENT: dict[str, Any] = {}  # folder, llm, and the (model id, weight versions) last pushed


def _weights_version(model: torch.nn.Module) -> tuple[int, int]:
    """Changes whenever the model object or any of its weights (in-place optimizer steps included) changes."""
    return id(model), sum(p._version for p in model.parameters())


def policy_folder(model: Any) -> str:
    """The policy folder a loaded model came from (`load_policy` sets it); the engine reads config and tokenizer
    there."""
    folder = str(getattr(model, "name_or_path", "") or "")
    if not folder or not os.path.isfile(os.path.join(folder, "config.json")):
        raise ValueError(f"engine 'vllm' needs the model's policy folder (config.json, tokenizer, processor files); "
                         f"the model's name_or_path is {folder!r}. Load it with vvkit.model.load_policy(folder), "
                         "or evaluate a folder path")
    return folder


def engine_for(model: torch.nn.Module, **build_kwargs: Any) -> Any:
    """The process's engine for this model: built over its policy folder (rebuilt for another folder; vLLM holds
    one engine's memory per process) and given the model's current weights whenever they changed since the last
    push, so an engine never answers with stale weights."""
    folder = policy_folder(model)
    if _CURRENT.get("folder") != folder:
        _CURRENT.clear()
        _CURRENT.update(folder=folder, llm=build_engine(folder, **build_kwargs), pushed=None)
    version = _weights_version(model)
    if _CURRENT["pushed"] != version:
        push_weights(_CURRENT["llm"], model)
        _CURRENT["pushed"] = _weights_version(model)
    return _CURRENT["llm"]


__all__ = ["BANNED_BIAS", "ENGINES", "build_engine", "collapse_placeholders", "engine_features", "engine_for", "engine_prompt",
           "engine_weights", "generate", "generate_ids", "policy_folder", "push_weights", "require_vllm",
           "sampling_params", "video_item", "vllm_available"]
