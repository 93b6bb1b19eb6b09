"""The policy: a tiny Qwen2.5-VL built offline (random weights, locally trained byte-level BPE) and one loader for it
and for real Qwen2.5-VL checkpoints, so every notebook runs the same code on a laptop CPU and on a GPU box.

The tiny sizes follow the learning-calibration runs (a 1.1M-parameter model learns format and colour perception on
CPU); the token layout (ChatML, <|vision_start|><|video_pad|><|vision_end|>, eos <|im_end|>) is Qwen2.5-VL's, so the
GRPO trainer cannot tell the tiny policy from Qwen2.5-VL-7B-Instruct, the recipe's base model.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from vvkit.io import atomic_write_json, atomic_write_text
from vvkit.processing import CHAT_TEMPLATE, get_processor, processor_config_files, video_metadata

__all__ = ["PolicySize", "SIZES", "build_tiny_policy", "load_policy", "get_processor", "count_parameters",
           "never_sampled_token_ids", "video_metadata", "resume_text_after_vision", "SPECIAL_TOKENS",
           "REASONING_TAGS"]

# Qwen2.5-VL's control tokens, in Qwen's order; ids 0..6 in the tiny vocabulary.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")
# Reason-Then-Respond tags: single tokens but NOT special, so decode(skip_special_tokens=True) keeps them.
REASONING_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# Placeholders only the processor may write: sampling one would desynchronise text and vision features.
NEVER_SAMPLED = ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>")
# Always part of the tokenizer corpus: the chat-template words and the answer format.
BASE_CORPUS = ("system", "user", "assistant", "\n", "<think>the answer is</think><answer>A</answer>",
               "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z", "0 1 2 3 4 5 6 7 8 9 . , ; : ? ! ' \" ( ) -")
# Qwen2.5-VL-7B-Instruct's preprocessing values: a FramePolicy-sized frame is never resized again.
PROCESSOR_CONFIG = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16384, "patch_size": 14, "temporal_patch_size": 2,
                    "merge_size": 2, "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD),
                    "rescale_factor": 1 / 255}
POLICY_FILE = "vvkit_policy.json"


@dataclass(frozen=True)
class PolicySize:
    """Shape of a tiny Qwen2.5-VL (text decoder and vision tower); sizes from the learning-calibration runs."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    bpe_vocab: int = 640  # BPE target; the trained vocabulary is smaller on a small corpus
    fullatt_blocks: tuple[int, ...] | None = None  # vision blocks with full attention; None = every block
    rope_theta: float = 10000.0


SIZES: dict[str, PolicySize] = {
    "tiny": PolicySize(128, 4, 4, 2, 384, (4, 6, 6), 2, 64, 2, 128),  # ~1.1M params: the demo policy
    "micro": PolicySize(64, 2, 4, 2, 128, (2, 3, 3), 2, 32, 2, 64),  # ~0.2M params: unit tests
    # ~54M params, windowed vision attention like the 7B (full attention in every 4th block): memory and speed checks
    "mid": PolicySize(512, 8, 4, 2, 2816, (16, 24, 24), 8, 320, 4, 864, fullatt_blocks=(3, 7), rope_theta=1e6),
}


# ---- M-RoPE positions -------------------------------------------------------------------------------------------
def resume_text_after_vision(position_ids: torch.Tensor, mm_token_type_ids: torch.Tensor,
                             attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `get_rope_index` output with every token after a vision block moved so that the block's next
    token sits at the block's largest position + 1, and the rope deltas recomputed.

    Qwen2.5-VL places the text after an image or video at max(vision positions) + 1 (its release code, transformers
    PR #35569, vLLM's `get_mrope_input_positions`). transformers 5.24 starts it at the block's start + max(h, w) /
    merge instead, which ignores a video's temporal extent ((T - 1) * tokens_per_second * second_per_grid_ts): the
    text then reuses positions inside the video, HF disagrees with vLLM rollouts and with the model's pretraining,
    and generate's rope delta (from the video's largest position) disagrees with a full forward over prompt +
    completion. An image (one temporal index) or a short video is left as it was: there both rules agree."""
    fixed = position_ids.clone()
    deltas = []
    for b in range(position_ids.shape[1]):
        keep = (attention_mask[b].bool() if attention_mask is not None
                else torch.ones(position_ids.shape[2], dtype=torch.bool, device=position_ids.device))
        pos = position_ids[:, b, keep]
        kinds, counts = torch.unique_consecutive(mm_token_type_ids[b, keep], return_counts=True)
        out, start, shift = pos.clone(), 0, 0
        for kind, n in zip(kinds.tolist(), counts.tolist()):
            out[:, start:start + n] += shift
            if kind != 0 and start + n < pos.shape[1]:  # a vision block with tokens after it
                shift += int(pos[:, start:start + n].max()) + 1 - int(pos[0, start + n])
            start += n
        fixed[:, b, keep] = out
        deltas.append(int(out.max()) + 1 - out.shape[1])
    return fixed, torch.tensor(deltas, device=position_ids.device).unsqueeze(1)


def _qwen_text_after_vision(get_rope_index: Any) -> Any:
    """Wrap transformers' `Qwen2_5_VLModel.get_rope_index` with `resume_text_after_vision` (once)."""
    if getattr(get_rope_index, "resumes_text_after_vision", False):
        return get_rope_index

    @functools.wraps(get_rope_index)
    def wrapped(self: Any, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor,
                image_grid_thw: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None,
                second_per_grid_ts: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        positions, _ = get_rope_index(self, input_ids, mm_token_type_ids, image_grid_thw=image_grid_thw,
                                      video_grid_thw=video_grid_thw, second_per_grid_ts=second_per_grid_ts,
                                      attention_mask=attention_mask, **kwargs)
        return resume_text_after_vision(positions, mm_token_type_ids, attention_mask)

    wrapped.resumes_text_after_vision = True
    return wrapped


# Patched on the class, once, at import: every Qwen2.5-VL in a process that uses vvkit follows Qwen's rule, the
# policy from load_policy and the reference model TRL builds from the policy's path alike.
Qwen2_5_VLModel.get_rope_index = _qwen_text_after_vision(Qwen2_5_VLModel.get_rope_index)


def _train_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on `corpus` with Qwen2's normaliser and pre-tokeniser, wrapped as a `Qwen2Tokenizer`."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS + REASONING_TAGS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(BASE_CORPUS) + list(corpus), trainer)
    merges = json.loads(bpe.to_str())["model"]["merges"]  # [["Ġ", "t"], ...] (older tokenizers: "Ġ t")
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    tok = Qwen2Tokenizer(vocab=bpe.get_vocab(), merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
                         extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TAGS])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def never_sampled_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the vision placeholders, for `generation_config.suppress_tokens`: only the processor may write them."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in NEVER_SAMPLED]
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise KeyError(f"tokenizer lacks one of {NEVER_SAMPLED}: not a Qwen2.5-VL tokenizer")
    return ids


def _tiny_config(size: PolicySize, tokenizer: Any) -> Any:
    """`Qwen2_5_VLConfig` for `size`, with the tokenizer's ids for the vision placeholders, eos and pad."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(vocab_size=len(tokenizer), hidden_size=size.text_hidden, intermediate_size=size.text_intermediate,
                num_hidden_layers=size.text_layers, num_attention_heads=size.text_heads,
                num_key_value_heads=size.text_kv_heads, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": size.rope_theta,
                                 "mrope_section": list(size.mrope_section)},
                bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(depth=size.vision_depth, hidden_size=size.vision_hidden, num_heads=size.vision_heads,
                  intermediate_size=size.vision_intermediate, out_hidden_size=size.text_hidden, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=2, window_size=112,
                  fullatt_block_indexes=list(range(size.vision_depth)) if size.fullatt_blocks is None
                  else list(size.fullatt_blocks))
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                            video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                            vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


def _corpus_digest(corpus: list[str]) -> str:
    """Fingerprint of the tokenizer corpus, so a folder built from another corpus is never silently reused."""
    return hashlib.sha256(json.dumps(list(corpus)).encode()).hexdigest()[:16]


def build_tiny_policy(out_dir: str | Path, seed: int = 0, corpus: list[str] | None = None, size: str = "tiny") -> Path:
    """Build (offline, deterministically from `seed`) a random-weight Qwen2.5-VL policy folder that `load_policy`
    and `get_processor` read like a real checkpoint; an existing folder built with the same settings is reused."""
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    if size not in SIZES:
        raise ValueError(f"size={size!r}; choose one of {sorted(SIZES)}")
    if corpus is None:
        from vvkit.synth.corpus import tokenizer_corpus

        corpus = tokenizer_corpus()
    out_dir = Path(out_dir)
    wanted = {"size": size, "seed": int(seed), "corpus_sha256": _corpus_digest(corpus)}
    if (out_dir / POLICY_FILE).is_file():
        found = json.loads((out_dir / POLICY_FILE).read_text())
        if all(found.get(k) == v for k, v in wanted.items()):
            return out_dir
        built = {k: found.get(k) for k in wanted}
        raise FileExistsError(f"{out_dir / POLICY_FILE}: this folder holds a policy built with {built}, not {wanted}; "
                              "delete the folder or pass another out_dir")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: exists, is not empty and has no {POLICY_FILE}; pass an empty or new out_dir")

    spec = SIZES[size]
    tokenizer = _train_tokenizer(corpus, spec.bpe_vocab)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(_tiny_config(spec, tokenizer)).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        suppress_tokens=never_sampled_token_ids(tokenizer))

    # Write into a sibling temp folder and rename: a crash never leaves a half-built policy to be "reused".
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the policy folder is an ordinary shared output
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, cfg in processor_config_files(PROCESSOR_CONFIG).items():
            atomic_write_json(tmp / name, cfg)
        atomic_write_text(tmp / "chat_template.jinja", CHAT_TEMPLATE)
        atomic_write_json(tmp / POLICY_FILE, {**wanted, "vocab_size": len(tokenizer), "spec": asdict(spec),
                                              "parameters": count_parameters(model)})
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A local folder, or a Hugging Face repo id already in the local cache; never the network."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name.count("/") == 1 and not path.is_absolute():  # a repo id: look in the local Hugging Face cache only
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name, "config.json")
        if isinstance(hit, str) and any((Path(hit).parent / f).exists()
                                        for f in ("model.safetensors", "model.safetensors.index.json")):
            return Path(hit).parent
    raise FileNotFoundError(
        f"load_policy({name!r}): no local folder at {path.resolve()} and no complete copy in the Hugging Face cache. "
        "vvkit runs offline and never downloads weights. Download the checkpoint where there is network (e.g. "
        f"`huggingface-cli download {name} --local-dir /models/{Path(name).name}`) and pass that folder: "
        f"load_policy('/models/{Path(name).name}'); or use the offline tiny policy from build_tiny_policy(out_dir).")


def _torch_dtype(dtype: Any) -> Any:
    """None -> the checkpoint's own dtype ("auto"); "bfloat16"/"float32"/... or a torch.dtype."""
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return "auto" if dtype is None else dtype
    resolved = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype={dtype!r}: not a torch dtype; use 'bfloat16', 'float16', 'float32' or a torch.dtype")
    return resolved


def load_policy(name_or_path: str | Path, dtype: Any = None, lora: dict | None = None,
                device: str | torch.device | None = None,
                attn_implementation: str | None = None) -> tuple[Any, Any]:
    """(model, processor) for the tiny policy or a local Qwen2.5-VL checkpoint, both read the same way (the
    processor with AutoProcessor, see get_processor); `lora` = peft.LoraConfig kwargs (default targets
    q_proj/v_proj, i.e. the language model only, task CAUSAL_LM). Vision placeholders are added to `generation_config.suppress_tokens` (Video-R1 and TRL
    leave them samplable; one sampled <|video_pad|> breaks the next forward's feature/placeholder count)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    path = _resolve_checkpoint(name_or_path)
    config_file = path / "config.json"
    model_type = json.loads(config_file.read_text()).get("model_type") if config_file.is_file() else None
    if model_type != "qwen2_5_vl":
        raise ValueError(f"{config_file}: model_type={model_type!r}; vvkit loads Qwen2.5-VL checkpoints ('qwen2_5_vl')")
    attn = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), dtype=_torch_dtype(dtype),
                                                               local_files_only=True, **attn)
    processor = get_processor(path)
    suppress = set(model.generation_config.suppress_tokens or []) | set(never_sampled_token_ids(processor.tokenizer))
    model.generation_config.suppress_tokens = sorted(suppress)
    if device is not None:
        model = model.to(device)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(**{"task_type": "CAUSAL_LM", "target_modules": ["q_proj", "v_proj"],
                                                    **lora}))
    return model, processor


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts: total, vision tower (`visual.*`), language (the rest: embeddings, decoder, lm_head),
    trainable."""
    total = vision = trainable = 0
    for name, p in model.named_parameters():
        total += p.numel()
        vision += p.numel() if "visual." in name else 0
        trainable += p.numel() if p.requires_grad else 0
    return {"total": total, "vision": vision, "language": total - vision, "trainable": trainable}


# ---- attention -----------------------------------------------------------------------------------------------------
def resolve_attention(name: str | None, dtype: torch.dtype) -> str | None:
    """The attention implementation to load with: `name` as given (transformers checks it), except that
    flash_attention_2 without the flash-attn package or without 16-bit weights falls back to sdpa with one printed
    line saying what that costs. Qwen2.5-VL's vision tower under sdpa makes one attention call per window, about
    3,600 calls per 16-frame video per forward: seconds of kernel dispatch per step at the paper's shapes."""
    if name != "flash_attention_2":
        return name
    import importlib.util

    why = ("the flash-attn package is not importable (GPU only: pip install flash-attn --no-build-isolation)"
           if importlib.util.find_spec("flash_attn") is None else
           f"it needs bf16 or fp16 weights and this run loads {dtype} (LoRA or DeepSpeed with bf16 keep bf16 weights)"
           if dtype not in (torch.bfloat16, torch.float16) else None)
    if why is None:
        return name
    print(f"[vvkit] attention: flash_attention_2 unavailable, {why}; using sdpa, whose vision tower makes one call "
          "per window (~3,600 per 16-frame video per forward), seconds per step at the paper's shapes", flush=True)
    return "sdpa"


# ---- saving and merging a trained policy ------------------------------------------------------------------------
POLICY_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "chat_template.jinja")


def save_policy(trainer: Any, processor: Any, out: Path, source: Path) -> Path:
    """Save the trained model where `load_policy` reads it: weights (LoRA merged), tokenizer and the processor files
    of the source policy (the processor is built in code, see vvkit.processing). Under DeepSpeed the in-memory LoRA
    model is sharded, so the main process merges the saved adapter into a fresh CPU copy of the source instead."""
    from peft import PeftModel

    model = trainer.accelerator.unwrap_model(trainer.model)
    main = trainer.accelerator.is_main_process
    if isinstance(model, PeftModel):
        trainer.save_model(str(out / "adapter"))
        trainer.accelerator.wait_for_everyone()  # every shard of the adapter is written
        if main and trainer.is_deepspeed_enabled:
            merge_adapter(source, out / "adapter", out)
        elif main:
            model.merge_and_unload().save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if main:
        processor.tokenizer.save_pretrained(str(out))
        for name in POLICY_FILES:
            if (source / name).exists():
                (out / name).write_bytes((source / name).read_bytes())
    trainer.accelerator.wait_for_everyone()  # no process returns a folder the main process is still writing
    return out


def merge_adapter(source: str | Path, adapter: str | Path, out: str | Path) -> Path:
    """Base policy `source` + LoRA adapter folder `adapter`, merged on the CPU and saved to `out` (peft's
    `merge_and_unload`); the weights keep the source checkpoint's dtype."""
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(source), dtype="auto", local_files_only=True)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    return Path(out)
