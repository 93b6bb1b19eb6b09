"""`VideoGRPOTrainer`: TRL's GRPOTrainer with the video in every forward pass (paper §5; TRL issues #4144, #5373).

TRL 1.16 forwards only image fields to its log-prob passes: a video prompt reaches `generate()`, but the loss is
computed on bare <|video_pad|> embeddings with 1-D positions, so log-probs equal a no-video forward and the vision
tower gets no gradient. This subclass decodes each row's video through the FramePolicy (lazy edits included),
encodes it at the real sampled fps, keeps `pixel_values_videos`, `video_grid_thw` and `second_per_grid_ts` as
per-sample lists through TRL's shuffle/split of the generation batch, and hands them, with the multimodal token
types (video = 2, rebuilt from the ids), to generation and to every log-prob pass (policy, old policy, reference).
On top: Video-R1's T-GRPO temporal contrast, per-task reward logging and a completions log.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from accelerate.utils import gather, gather_object
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from vvkit.io import append_jsonl
from vvkit.rundir import StageDir
from vvkit.rewards.parsing import completion_text, parse_completion
from vvkit.rewards.rule import format_reward
from vvkit.rollout import (VIDEO_FIELDS, EncodedPrompt, PromptCache, encode_prompt, never_sampled, row_rng,
                           shuffle_frames, token_types, video_inputs, video_lists)
from vvkit.video import FramePolicy
from vvkit.vllm_engine import build_engine, generate_ids, policy_folder, push_weights, require_vllm

TGRPO_CORRECT = 0.1  # Video-R1 counts an ordered completion as correct when its accuracy reward exceeds 0.1


def task_part(values: torch.Tensor, formats: torch.Tensor, gate: str) -> torch.Tensor:
    """The task score inside a gated reward: Video-R1's T-GRPO tests its accuracy reward alone (> 0.1), so under
    `gate: add` (format + task) the format point is taken off first; a well-formed wrong answer scores 0, not 1."""
    return values - formats if gate == "add" else values


def temporal_reward(completions: list, **kwargs: Any) -> list[float | None]:
    """T-GRPO bonus column (Video-R1): a placeholder that VideoGRPOTrainer fills after scoring both groups."""
    return [None] * len(completions)


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class EpochRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler with a shuffle that depends on (seed, epoch) only: TRL's draws from a generator whose
    state is not checkpointed, so a resumed run would see other prompts than an uninterrupted one."""

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed((self.seed or 0) + int(epoch))


class VideoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose rows carry a video (schema columns `video`, `edits`) and whose loss sees it.

    All G completions of a prompt come from one batched generate (TRL repeats each prompt G times in the generation
    batch); rows of mixed task types share a batch and each reward returns None where it does not apply.
    With `use_vllm`, a colocated vLLM engine (one per rank) samples them instead of HF generate, from the same frames
    and fps (`vvkit.vllm_engine`); the loss still sees the HF-encoded video fields of every sample.
    """

    def __init__(self, *args: Any, frame_policy: FramePolicy | None = None, **kwargs: Any):
        cfg = kwargs.get("args")
        use_vllm = bool(cfg is not None and cfg.use_vllm)
        if use_vllm:  # TRL's own engine forwards only images: vvkit builds a video-aware one (_vllm_engine)
            require_vllm()
            cfg.use_vllm = False
        try:
            super().__init__(*args, **kwargs)
        finally:
            if use_vllm:
                cfg.use_vllm = True
        self.use_vllm = use_vllm  # TRL's flag: its importance-sampling correction then uses the engine's log-probs
        self._llm: Any = None
        self._last_loaded_step = -1
        self.frame_policy = frame_policy or FramePolicy.from_dict(getattr(self.args, "frames", None) or {})
        if self._video_pad_token_id is None:
            raise ValueError("the processor's tokenizer has no <|video_pad|> token: not a Qwen2.5-VL processor")
        # Vision placeholders must only come from the processor: a sampled one desynchronises tokens and features.
        suppress = sorted({*(self.generation_kwargs.get("suppress_tokens") or []),
                           *never_sampled(self.processing_class)})
        self.generation_kwargs["suppress_tokens"] = suppress
        self.generation_config.suppress_tokens = suppress
        # T-GRPO: one more reward column, filled in _calculate_rewards (as TRL adds environment rewards).
        self.tgrpo = bool(getattr(self.args, "tgrpo", False))
        if self.tgrpo:
            names = list(self.reward_func_names)
            want = getattr(self.args, "tgrpo_reward", None) or names[0]
            if want not in names:
                raise ValueError(f"tgrpo_reward={want!r} is not one of the reward functions {names}")
            self._tgrpo_index = names.index(want)
            self.reward_funcs.append(temporal_reward)
            self.reward_func_names.append("temporal_reward")
            self.reward_processing_classes.append(None)
            self.reward_weights = torch.cat([self.reward_weights, torch.ones(1)])
        self._prompt_cache = PromptCache(self.processing_class, self.frame_policy)
        self._video_batch: dict[str, list[torch.Tensor]] | None = None  # aligned with the rows being scored
        self._encoded: list[EncodedPrompt] | None = None
        self._clips: list[list[tuple[np.ndarray, float]]] | None = None
        self._epoch_sampler: EpochRepeatSampler | None = None

    def _get_train_sampler(self, dataset: Any = None) -> EpochRepeatSampler:
        base = super()._get_train_sampler(dataset)
        self._epoch_sampler = EpochRepeatSampler(
            data_source=base.data_source, mini_repeat_count=base.mini_repeat_count, batch_size=base.batch_size,
            repeat_count=base.repeat_count, shuffle=base.shuffle, seed=base.seed)
        return self._epoch_sampler

    def _run_epoch(self, model: Any, epoch: int, *args: Any, **kwargs: Any) -> Any:
        """Seed the sampler with the epoch directly: with several processes, accelerate wraps it in
        BatchSamplerShard (and, on a mid-epoch resume, in SkipBatchSampler on top), and transformers' `set_epoch`
        stops two levels short, so a resumed run would replay epoch 0's order."""
        if self._epoch_sampler is not None:
            self._epoch_sampler.set_epoch(epoch)
        return super()._run_epoch(model, epoch, *args, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Resume the weights through `from_pretrained`: transformers 5.24 saves Qwen2.5-VL under its checkpoint key
        names and Trainer reloads them with `load_state_dict(strict=False)`, which silently loads nothing."""
        from peft import PeftModel

        model = model if model is not None else self.model
        folder = Path(resume_from_checkpoint)
        full = (folder / "model.safetensors").exists() or (folder / "model.safetensors.index.json").exists()
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or isinstance(model, PeftModel) or not full:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        loaded = type(model).from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        model.load_state_dict(loaded.state_dict(), strict=True)  # a key mismatch is an error, not a warning

    # ---- video plumbing -----------------------------------------------------------------------------------------
    def _encode_rows(self, inputs: list[dict]) -> tuple[list, list[EncodedPrompt]]:
        """Each row's clips and encoded prompt (decoded once per row while cached; the G copies share them)."""
        pairs = [self._prompt_cache(x) for x in inputs]
        return [c for c, _ in pairs], [e for _, e in pairs]

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict[str, Any]:
        if "video" not in inputs[0]:
            return super()._generate_and_score_completions(inputs)
        self._clips, self._encoded = self._encode_rows(inputs)
        self._video_batch = video_lists(self._encoded)
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            encoded, self._video_batch, self._encoded, self._clips = self._encoded, None, None, None
        output.update(video_lists(encoded))  # per-sample lists: TRL's shuffle and split keep them aligned
        return output

    def _prepare_input(self, data: Any) -> Any:
        """transformers' device move, except that `second_per_grid_ts` keeps fp32: under DeepSpeed the Trainer casts
        every floating input to the engine dtype, and M-RoPE multiplies and truncates in that dtype, so a bf16 copy
        gives the sampling pass other temporal positions than the fp32 log-prob passes (a 37.3 s clip of 16 frames:
        [0,9,18,28,...] vs [0,9,18,27,...])."""
        if isinstance(data, Mapping) and isinstance(data.get("second_per_grid_ts"), torch.Tensor):
            moved = super()._prepare_input({k: v for k, v in data.items() if k != "second_per_grid_ts"})
            moved["second_per_grid_ts"] = data["second_per_grid_ts"].to(self.args.device, dtype=torch.float32)
            return type(data)(moved) if not isinstance(data, dict) else moved
        return super()._prepare_input(data)

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict[str, Any]]:
        if self._encoded is None:
            if self.use_vllm:
                raise ValueError("use_vllm: the dataset has no `video` column; vvkit's engine samples vvkit rows")
            return super()._tokenize_prompts(prompts)
        return self._generation_fields(self._encoded, self._clips)

    def _generation_fields(self, encoded: Sequence[EncodedPrompt], clips: Sequence[Any]
                           ) -> tuple[list[list[int]], None, dict[str, Any]]:
        """(prompt ids, images=None, multimodal fields) in the shape TRL's `_generate_single_turn` expects; with
        `use_vllm`, also the encoded prompts and their clips for the engine (`vllm_prompts`)."""
        if self.use_vllm:
            return [e.input_ids for e in encoded], None, {"vllm_prompts": (list(encoded), list(clips))}
        fields: dict[str, Any] = video_inputs(video_lists(encoded), 0, len(encoded), "cpu")
        fields["mm_token_type_ids"] = [  # a per-token field: TRL left-pads it with the ids
            token_types(torch.tensor(e.input_ids), self._video_pad_token_id, self._image_pad_token_id).tolist()
            for e in encoded]
        return [e.input_ids for e in encoded], None, fields

    # ---- vLLM rollouts (use_vllm) -------------------------------------------------------------------------------
    def _vllm_engine(self) -> Any:
        """The colocated engine (built on first use over the policy folder; one per rank, in-process, with the
        external launcher under torchrun, as TRL's `vllm_mode: colocate`), given the policy's weights once per
        optimizer step (gathered under ZeRO-3, LoRA merged: `vvkit.vllm_engine.push_weights`)."""
        if self._llm is None:
            acc = self.accelerator
            self._llm = build_engine(
                policy_folder(acc.unwrap_model(self.model)), seed=self.args.seed + acc.process_index,
                max_model_len=self.args.vllm_max_model_length or 4096, external_launcher=acc.num_processes > 1,
                dtype="bfloat16" if self.args.bf16 else "float32",  # sample in the precision the policy trains in
                gpu_memory_utilization=self.args.vllm_gpu_memory_utilization,
                max_num_seqs=self.args.per_device_train_batch_size * self.args.steps_per_generation)
        if self.state.global_step != self._last_loaded_step:
            push_weights(self._llm, self.model)
            self._last_loaded_step = self.state.global_step
        return self._llm

    def _generate_single_turn(self, prompt_ids: list, images: Any, multimodal_fields: dict, num_generations: int,
                              has_tool_images: bool = False) -> tuple[list[list[int]], Any]:
        """TRL's hook: one completion per prompt row (TRL already repeats each prompt G times; the engine samples a
        prompt's copies as one request), plus the sampled tokens' log-probs for TRL's importance-sampling
        correction."""
        if not self.use_vllm:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        encoded, clips = multimodal_fields["vllm_prompts"]
        out = generate_ids(self._vllm_engine(), self.processing_class, encoded, clips, n=1,
                           temperature=self.temperature, max_new_tokens=self.max_completion_length,
                           top_p=self.top_p, top_k=self.top_k or 0, logprobs=True)
        return [ids for ids, _ in out], [lps for _, lps in out]

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        if "video_grid_thw" not in inputs:
            return super()._compute_loss(model, inputs)
        self._video_batch = {k: inputs[k] for k in VIDEO_FIELDS}
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._video_batch = None

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                           logits_to_keep: int, batch_size: int | None = None,
                                           compute_entropy: bool = False, compute_aux_loss: bool = False,
                                           **image_kwargs: Any) -> tuple[torch.Tensor, Any, Any]:
        """TRL's chunked log-prob pass, with each chunk's videos, timings and token types (TRL passes images only)."""
        videos = self._video_batch
        if videos is None:
            if (input_ids == self._video_pad_token_id).any():
                raise RuntimeError("log-prob pass over sequences with <|video_pad|> placeholders but no video batch: "
                                   "TRL's pass would score them on bare placeholder embeddings. The video fields "
                                   "(pixel_values_videos, video_grid_thw, second_per_grid_ts) were lost on the way "
                                   "from _generate_and_score_completions to _compute_loss")
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **image_kwargs)
        n = input_ids.size(0)
        if len(videos["video_grid_thw"]) != n:
            raise RuntimeError(f"{len(videos['video_grid_thw'])} video entries for {n} sequences: batch misaligned")
        batch_size = batch_size or n
        logps, entropies, aux = [], [], []
        for start in range(0, n, batch_size):
            end = min(start + batch_size, n)
            ids, mask = input_ids[start:end], attention_mask[start:end]
            model_inputs = {"input_ids": ids, "attention_mask": mask,
                            "mm_token_type_ids": token_types(ids, self._video_pad_token_id, self._image_pad_token_id),
                            **video_inputs(videos, start, end, ids.device)}
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            labels = ids.masked_fill(mask == 0, -100)  # only completion tokens are scored
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                out = model(**model_inputs, labels=labels, fused_lm_head=True)
            logps.append(out.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                entropies.append(out.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                aux.append(out.aux_loss)
        return (torch.cat(logps), torch.cat(entropies) if compute_entropy else None,
                torch.stack(aux).mean() if compute_aux_loss else None)

    # ---- rewards: T-GRPO, per-task metrics, completions log ------------------------------------------------------
    def _calculate_rewards(self, inputs: list[dict], prompts: list, completions: list,
                           completion_ids_list: list) -> torch.Tensor:
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (N_all, F)
        mode = "train" if self.model.training else "eval"
        if self.tgrpo and self._clips is not None and mode == "train":  # Video-R1 contrasts training rollouts only
            rewards_per_func = self._temporal_bonus(inputs, prompts, completions, rewards_per_func, mode)
        self._log_by_task(inputs, completions, rewards_per_func, mode)
        return rewards_per_func

    def _temporal_bonus(self, inputs: list[dict], prompts: list, completions: list, rewards_per_func: torch.Tensor,
                        mode: str) -> torch.Tensor:
        """Video-R1 T-GRPO: sample G/2 completions per prompt on frame-shuffled clips; when the ordered group's mean
        accuracy >= tgrpo_ratio x the shuffled group's, add tgrpo_alpha to each correct ordered completion."""
        device, G = rewards_per_func.device, self.num_generations
        picks = list(range(0, len(inputs), 2))  # every other row: G/2 shuffled samples per prompt, as Video-R1
        encoded, clips = [], []
        for i in picks:
            rng = row_rng(self.args.seed, inputs[i].get("id", ""), self.state.global_step, i)
            clips.append([(shuffle_frames(frames, rng), fps) for frames, fps in self._clips[i]])
            encoded.append(encode_prompt(self.processing_class, inputs[i]["prompt"], clips[-1]))
        prompt_ids, _, fields = self._generation_fields(encoded, clips)
        completion_ids, _ = self._generate_single_turn(prompt_ids, None, fields, G)
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        sub = [[{"role": "assistant", "content": t}] for t in texts] if isinstance(prompts[0], list) else texts
        columns = {k: [inputs[i][k] for i in picks] for k in inputs[0] if k not in ("prompt", "completion")}
        scores = self.reward_funcs[self._tgrpo_index](
            prompts=[prompts[i] for i in picks], completions=sub, completion_ids=completion_ids, **columns,
            trainer_state=self.state, log_extra=_noop, log_metric=_noop)
        shuffled_acc = torch.full((len(inputs),), math.nan, device=device)
        shuffled_acc[picks] = torch.tensor([math.nan if s is None else float(s) for s in scores], device=device)
        fn = self.reward_funcs[self._tgrpo_index]
        settings = getattr(fn, "settings", {})
        gate, strict_format = settings.get("gate", "multiply"), settings.get("strict_format", True)
        shuffled_fmt = torch.zeros(len(inputs), device=device)
        shuffled_fmt[picks] = torch.tensor(format_reward(texts, strict_format=strict_format), device=device)
        shuffled_acc = task_part(gather(shuffled_acc), gather(shuffled_fmt), gate).view(-1, G)  # NaN: unsampled
        ordered_fmt = torch.tensor(format_reward([completion_text(c) for c in completions],
                                                 strict_format=strict_format), device=device)
        ordered = task_part(rewards_per_func[:, self._tgrpo_index], gather(ordered_fmt), gate)
        p_ord, p_shuf = torch.nanmean(ordered.view(-1, G), 1), torch.nanmean(shuffled_acc, 1)
        qualifies = (p_ord >= self.args.tgrpo_ratio * p_shuf).repeat_interleave(G)  # NaN compares False
        bonus = self.args.tgrpo_alpha * (qualifies & (ordered > TGRPO_CORRECT)).float()
        scorable = ~torch.isnan(rewards_per_func[:, :-1]).all(dim=1)
        rewards_per_func[:, -1] = torch.where(scorable, bonus, torch.full_like(bonus, math.nan))
        m = self._metrics[mode]
        m["tgrpo/ordered_acc"].append(torch.nanmean(p_ord).item())
        m["tgrpo/shuffled_acc"].append(torch.nanmean(p_shuf).item())
        m["tgrpo/bonus_rate"].append((bonus > 0).float().mean().item())
        return rewards_per_func

    def _log_by_task(self, inputs: list[dict], completions: list, rewards_per_func: torch.Tensor, mode: str) -> None:
        """Reward, each reward component and the format rate per task type; sampled completions to JSONL."""
        device = rewards_per_func.device
        texts = [completion_text(c) for c in completions]
        well = torch.tensor([parse_completion(t).well_formed for t in texts], dtype=torch.float32, device=device)
        well = gather(well)
        types = gather_object([x.get("problem_type", "all") for x in inputs])
        weights = self.reward_weights.to(device)
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        total = (rewards_per_func * weights).nansum(dim=1).masked_fill(unscorable, math.nan)
        m = self._metrics[mode]
        m["format_rate"].append(well.mean().item())
        for task in sorted(set(types)):
            idx = torch.tensor([i for i, t in enumerate(types) if t == task], device=device)
            m[f"format_rate/{task}"].append(well[idx].mean().item())
            columns = [(f"rewards/{name}/{task}", rewards_per_func[idx, j])
                       for j, name in enumerate(self.reward_func_names)]
            for key, values in [(f"reward/{task}", total[idx])] + columns:
                if not torch.isnan(values).all():  # a reward that never applies to this task logs nothing for it
                    m[key].append(torch.nanmean(values).item())
        keep = int(getattr(self.args, "save_completions", 0) or 0)
        if keep and self.accelerator.is_main_process:  # rank 0's rows are the first len(inputs) gathered rows
            path = StageDir(self.args.output_dir).completions
            for i in range(min(keep, len(inputs))):
                rec = {"step": self.state.global_step + (mode == "train"), "mode": mode, "id": inputs[i].get("id"),
                       "problem_type": inputs[i].get("problem_type"), "solution": inputs[i].get("solution"),
                       "completion": texts[i], "reward": _num(total[i]),
                       "rewards": {n: _num(rewards_per_func[i, j]) for j, n in enumerate(self.reward_func_names)}}
                append_jsonl(path, rec)


def _num(x: torch.Tensor) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v
