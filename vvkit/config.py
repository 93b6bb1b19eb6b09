"""Typed configs, one dataclass per notebook stage, filled strictly from `params/*.yaml`.

A params file has one section per numbered notebook (`data_synthesis`, `reward_design`, `grpo_training`,
`analysis`) plus the shared `run` and `frames` sections. Unknown keys and wrong types are errors that name the
file, the section and the key, as nanoGPT's configurator does, but with dataclasses instead of `exec`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Keys every notebook receives (see `vvkit.run`): the run folder, the seed, the one frame policy, the policy path.
SHARED_KEYS = ("run_dir", "seed", "frames", "policy")

# The `run` section: what the runner itself needs, not passed to notebooks except `seed` and `policy`.
RUN_KEYS = {
    "name": "Run name; the folder is runs/<name>__seed<seed>__<time> unless --out is given.",
    "seed": "Seed for every generator and trainer in the run.",
    "policy": "Path of a saved policy (a local Qwen2.5-VL folder); null = the tiny offline policy built in the run.",
    "notebooks": "Which numbered notebooks to run, e.g. [1, 2]; null = all of them in order.",
}


class ConfigError(ValueError):
    """A params file or config dict that does not match its dataclass."""


def _type_ok(value: Any, tp: Any) -> bool:
    """Lenient runtime check for the simple types used in params (int accepted for float, None for Optional)."""
    if tp is Any or isinstance(tp, str):
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in (str, bool):
        return isinstance(value, tp)
    if origin in (list, tuple) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if typing.get_origin(tp) is typing.Literal:
        return value in typing.get_args(tp)
    return True  # enums, classes from TRL/transformers: left to their own __post_init__


def from_dict(cls: type, d: dict, where: str = "params") -> Any:
    """Build dataclass `cls` from `d`, rejecting unknown keys and wrongly typed values with a named error."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(names)}"
        )
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # third-party base classes may have unresolved forward references
        hints = {}
    for k, v in d.items():
        tp = hints.get(k)
        if tp is not None and not _type_ok(v, tp):
            raise ConfigError(f"{where}: key {k!r} = {v!r} should be of type {tp}")
    return cls(**d)


def field_help(cls: type) -> dict[str, str]:
    """Help text of every field (shown by `vvkit run --help-params`)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _f(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class SharedConfig:
    """Fields every stage config carries: where outputs go, the seed, the frame policy, the policy path."""

    run_dir: str = _f("runs/interactive", "Run folder; every output of the notebook goes below it.")
    seed: int = _f(0, "Seed for data generation, sampling and training.")
    frames: dict = _f({}, "FramePolicy fields (fps, nframes, min/max_frames, min/max/total_pixels, backend).")
    policy: str | None = _f(None, "Saved policy folder; None = the tiny offline policy in <run_dir>/policy/tiny.")


@dataclass
class SynthConfig(SharedConfig):
    """Notebook 01: the dataset (toy world or an annotation file -> mcq, open-ended, caption, DarkEventInfer, MixVidQA)."""

    source: str = _f("toyworld", "'toyworld' (rendered offline), 'vidbridge' (the authors' released jsonl at "
                                 "data_path) or the path of a dense-caption annotation JSON (an ActivityNet folder "
                                 "of train.json / val_1.json also works).")
    data_path: str = _f("", "source 'vidbridge': VidBridge-R1_training_data.jsonl (rows imported as they are).")
    strip_prefix: str | None = _f(None, "source 'vidbridge': the authors' video root to replace by video_root; "
                                        "None = the folder prefix all its videos share.")
    annotation_format: str = _f("", "Format of an annotation `source`: 'coin', 'activitynet' or 'youcook2'.")
    video_root: str = _f("", "Folder holding the annotated videos (<id>.mp4 etc.); unused for the toy world.")
    num_videos: int = _f(200, "Toy-world videos to render; for annotations, use at most this many (0 = all).")
    test_fraction: float = _f(0.2, "Share of source videos held out for test (train/test videos are disjoint).")
    split: str = _f("auto", "Annotation files: 'official' (COIN/YouCook2 subset, ActivityNet file), 'random' "
                            "(test_fraction), or 'auto' = official when the file names both train and test videos, "
                            "else random (the summary says which); the toy world and 'vidbridge' split at random.")
    strict: bool = _f(False, "Refuse missing videos and malformed records instead of skipping and reporting them.")
    difficulty: str = _f("full", "Toy-world preset: 'simple' (one shape, colour question) or 'full' (2-3 shapes, "
                                 "every event kind, ordering questions).")
    families: list = _f([], "Question families for mcq/open-ended/MixVidQA; [] = the difficulty's defaults.")
    task_mix: dict = _f({"mcq": 0.3, "open_ended": 0.1, "caption": 0.2, "dark_event": 0.2, "mixvid": 0.2},
                        "Relative weight of each task (mcq, open_ended, caption, dark_event, mixvid) per sample.")
    samples_per_video: int = _f(1, "Rows drawn per source video (each picks its task from task_mix).")
    num_options: int = _f(4, "Options per multiple-choice question (one correct).")
    size: int = _f(112, "Toy-world frame side in pixels (square frames).")
    fps: float = _f(8.0, "Toy-world frame rate.")
    min_duration: float = _f(6.0, "Shortest toy-world video (s).")
    max_duration: float = _f(12.0, "Longest toy-world video (s).")
    texture: bool = _f(True, "Faint striped background instead of a plain one.")
    dark_min_event_s: float = _f(1.0, "DarkEventInfer: shortest event that may be blacked out (s).")
    dark_max_share: float = _f(0.4, "DarkEventInfer: largest share of the clip the dark span may cover.")
    dark_min_context_s: float = _f(1.0, "DarkEventInfer: visible video required before and after the span (s).")
    min_dark_frames: int = _f(1, "DarkEventInfer: keep only spans covering at least this many frames sampled by the "
                                 "`frames` policy (16 uniform frames miss short events of long videos).")
    mix_min_chunk_s: float = _f(1.5, "MixVidQA: shortest chunk (s); the paper interleaves every 1.5-2 s.")
    mix_max_chunk_s: float = _f(2.0, "MixVidQA: longest chunk (s).")
    clip_s: float | None = _f(10.0, "MixVidQA: cut each source to a clip this long (random, seeded start) before "
                                    "interleaving (paper: ~10 s clips); null = whole videos.")
    mix_cue: str = _f("auto", "MixVidQA: name the asked clip by 'content', by 'position' (the clip shown first), or "
                              "'auto' (content when the question names it; position for the toy world).")
    mixvid_clips: str = _f("", "MixVidQA from a clip list with its own QA (JSONL/CSV: video, question, answer, "
                               "optional duration, start, end, split) instead of event questions; '' = none.")
    out_dir: str = _f("data", "Output folder, relative to run_dir (train.jsonl, test.jsonl, videos/).")


@dataclass
class RewardConfig(SharedConfig):
    """Notebook 02: which rewards GRPO sums, how the format gate combines, which judge scores free text (paper §4)."""

    reward_funcs: list = _f(["accuracy"], "Reward names (vvkit.rewards.REWARDS); the paper registers 'accuracy' only.")
    reward_weights: list | None = _f(None, "One weight per reward (TRL reward_weights); None = all 1.0.")
    gate: str = _f("multiply", "accuracy = format x task ('multiply', paper), format + task ('add', Video-R1) or task ('none').")
    strict_format: bool = _f(True, "Full-match format (no empty think, nothing outside the tags); False = the authors' regex.")
    open_ended_metric: str = _f("rouge_mean", "open_ended score: rouge_mean (Video-R1), rouge_l, embedding or judge.")
    caption_alpha: float = _f(0.5, "caption = AutoDQ recall + alpha x precision + keywords (paper: 0.5).")
    caption_keywords: bool = _f(True, "Add the keyword term (+0.2 per temporal connective up to 0.4, -0.2 per hedge).")
    rouge_variant: str = _f("mean", "The 'rouge' reward: mean of ROUGE-1/2/L, or rouge1 / rouge2 / rougeL.")
    length_min: int = _f(320, "Length control: bonus when a correct completion has at least this many tokens.")
    length_max: int = _f(512, "Length control: ... and at most this many tokens (Video-R1: 320-512).")
    length_bonus: float = _f(0.2, "Length control bonus (Video-R1: 0.2).")
    length_min_correct: int = _f(2, "Length control applies when at least this many of a group are correct.")
    repetition_ngram: int = _f(3, "Repetition penalty: word n-gram size.")
    repetition_max_penalty: float = _f(-1.0, "Repetition penalty for an all-repeated completion (<= 0).")
    judge: str = _f("offline", "Judge for dark_event, mixvid, caption: 'offline' (embeddings) or 'http' (LLM endpoint).")
    judge_base_url: str | None = _f(None, "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (judge='http').")
    judge_model: str | None = _f(None, "Model name the endpoint serves, e.g. Qwen/Qwen2.5-72B-Instruct.")
    judge_api_key_env: str | None = _f(None, "Name of the environment variable holding the API key; None = no key.")
    judge_cache: str | None = _f(None, "sqlite file caching judge replies; None = <run_dir>/rewards/judge_cache.sqlite.")
    judge_timeout_s: float = _f(60.0, "Seconds per judge request before it is retried.")
    judge_max_retries: int = _f(3, "Retries per request (exponential backoff) before it counts as failed.")
    judge_concurrency: int = _f(8, "Judge requests in flight at once.")
    judge_on_error: str = _f("raise", "A failed or unparseable judge reply: 'raise', or 'count' (reward None, logged).")
    judge_dark_full: float = _f(0.6, "Offline judge: cosine for DarkEventInfer score 2 (with all facts stated).")
    judge_dark_partial: float = _f(0.4, "Offline judge: cosine for DarkEventInfer score 1.")
    judge_mixvid_threshold: float = _f(0.5, "Offline judge: cosine for a MixVidQA answer to count as true.")
    judge_entail_threshold: float = _f(0.5, "Offline judge: cosine for one caption event to entail another (AutoDQ).")
    judge_lexicon: bool = _f(True, "Offline judge: use the toy-world contradiction lexicon (colours, shapes, verbs).")
    max_rows: int = _f(40, "Held-out rows scored when comparing the judge with exact answers.")

    def __post_init__(self) -> None:
        from vvkit.rewards.registry import REWARDS, check_settings, reward_settings

        unknown = [n for n in self.reward_funcs if n not in REWARDS and ":" not in n]
        if unknown:
            raise ConfigError(f"reward_design: unknown reward_funcs {unknown}; known: {sorted(REWARDS)}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ConfigError(f"reward_design: {len(self.reward_weights)} reward_weights for "
                              f"{len(self.reward_funcs)} reward_funcs; give one weight per reward or null")
        try:
            check_settings(reward_settings(self))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"reward_design: {e}") from None


@dataclass
class AnalysisConfig(SharedConfig):
    """Notebook 04: evaluation before and after GRPO, grounding diagnostics, benchmarks, the report."""

    compare: list = _f(["warm_start", "grpo"], "Policies to evaluate: 'base' (the starting policy), 'warm_start' "
                       "(the policy GRPO started from), 'grpo' (the trained one), other names under <run_dir>/train, "
                       "or policy folders.")
    eval_data: str | None = _f(None, "Held-out rows (JSONL); None = <run_dir>/data/test.jsonl.")
    max_rows: int | None = _f(None, "Evaluate at most this many held-out rows (None = all).")
    batch_size: int = _f(16, "Prompts per batched generate during evaluation.")
    max_new_tokens: int = _f(48, "Decoding budget per answer (the paper allows 2048; the tiny policy needs few).")
    do_sample: bool = _f(False, "Sample instead of greedy decoding (the paper evaluates greedy).")
    temperature: float = _f(1.0, "Sampling temperature when do_sample is true.")
    diagnostics: list = _f(["video", "shuffled", "blank", "no_video"], "Grounding conditions to evaluate for every "
                           "compared policy; ['video'] = plain evaluation only.")
    grounding_margin: float = _f(0.05, "Warn when the video beats the best no-video condition by less than this.")
    benchmarks: dict = _f({}, "Optional local benchmark copies: {name: {format, path, video_root, frames, max_rows}}, "
                          "format one of videomme, mvbench, dream1k, nextqa.")
    judge: str | dict = _f("offline", "Judge: 'offline' (embeddings), 'http', or reward_design judge settings "
                           "{judge: http, judge_base_url: ..., judge_model: ...} (vvkit.rewards.get_judge).")
    open_ended_metric: str = _f("judge", "Score for open_ended rows: judge, rouge_mean, rouge_l or embedding.")
    n_completions: int = _f(24, "Completions shown in the viewer and written to completions.html, predictions.html.")

    def __post_init__(self) -> None:
        conditions = ("video", "shuffled", "blank", "no_video")  # vvkit.evaluate.CONDITIONS
        bad = [c for c in self.diagnostics if c not in conditions]
        if bad or "video" not in self.diagnostics:
            raise ConfigError(f"analysis.diagnostics = {self.diagnostics}: use conditions from {list(conditions)}, "
                              f"including 'video' (the plain evaluation the others are compared with)")
        if not self.compare:
            raise ConfigError("analysis.compare is empty; name at least one policy, e.g. [warm_start, grpo]")
        metrics = ("judge", "rouge_mean", "rouge_l", "embedding")  # vvkit.rewards.tasks.OPEN_ENDED_METRICS
        if self.open_ended_metric not in metrics:
            raise ConfigError(f"analysis.open_ended_metric = {self.open_ended_metric!r}; choose one of {list(metrics)}")


# Section name in params/*.yaml -> "module:Class" of its config (imported lazily to keep `vvkit run` fast).
SECTION_CONFIGS: dict[str, str] = {
    "data_synthesis": "vvkit.config:SynthConfig",
    "reward_design": "vvkit.config:RewardConfig",
    "grpo_training": "vvkit.config:TrainConfig",
    "analysis": "vvkit.config:AnalysisConfig",
}


def section_config(section: str) -> type:
    """The dataclass that validates one params section."""
    if section not in SECTION_CONFIGS:
        raise ConfigError(f"unknown params section {section!r}; known: {sorted(SECTION_CONFIGS)}")
    mod, _, name = SECTION_CONFIGS[section].partition(":")
    import importlib

    module = importlib.import_module(mod)
    if not hasattr(module, name):
        raise ConfigError(f"section {section!r}: {mod}.{name} is not defined")
    return getattr(module, name)


def load_params(path: str | Path) -> dict:
    """Read and validate a params file: every section and key must be known, every value well typed."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found (presets live in params/, e.g. params/default.yaml)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    run = params.get("run", {}) or {}
    unknown = sorted(set(run) - set(RUN_KEYS))
    if unknown:
        raise ConfigError(f"{path}: section 'run': unknown key(s) {unknown}; valid: {sorted(RUN_KEYS)}")
    from vvkit.video import FramePolicy

    frames = params.get("frames", {}) or {}
    try:
        FramePolicy.from_dict(frames)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: section 'frames': {e}") from None
    for section, values in params.items():
        if section in ("run", "frames"):
            continue
        cls = section_config(section)
        values = values or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
        clash = sorted(set(values) & set(SHARED_KEYS))
        if clash:
            raise ConfigError(f"{path}: section {section!r} sets shared key(s) {clash}; set them under 'run'/'frames'")
        shared = {"run_dir": "runs/check", "seed": int(run.get("seed", 0)), "frames": frames, "policy": run.get("policy")}
        from_dict(cls, {**shared, **values}, where=f"{path}: section {section!r}")
    return params


# ---------------------------------------------------------------------------------------------------------------
# TrainConfig (notebook 03, `python -m vvkit.train`): trl.GRPOConfig plus vvkit's fields.
# Importing trl costs ~5 s, so the class is defined on first access (PEP 562 module __getattr__); it still lives at
# `vvkit.config.TrainConfig`, which is what pickled checkpoints (training_args.bin) refer to.
# ---------------------------------------------------------------------------------------------------------------


def _define_train_config() -> type:
    """Build `TrainConfig(trl.GRPOConfig)`: only vvkit's fields are new; every GRPOConfig field stays settable."""
    import torch
    from trl import GRPOConfig

    @dataclass
    class TrainConfig(GRPOConfig):
        """GRPO on video (paper §5): TRL's GRPOConfig, the frame policy, rewards, data and vvkit's options.

        TRL counts `per_device_train_batch_size` in completions, so prompts per optimizer step =
        per_device_train_batch_size x gradient_accumulation_steps x processes / num_generations (see `prompts_per_step`).
        """

        # ---- shared keys (every notebook receives them) ----
        run_dir: str = _f("runs/interactive", "Run folder; outputs go to <run_dir>/train/{warm_start,grpo}.")
        frames: dict = _f({}, "FramePolicy fields for training videos (fps, nframes, min/max_frames, pixels, backend).")
        policy: str | None = _f(None, "Starting policy folder; None = the tiny offline policy at <run_dir>/policy/tiny.")
        # ---- data ----
        train_data: str | None = _f(None, "Training rows (JSONL); None = <run_dir>/data/train.jsonl.")
        eval_data: str | None = _f(None, "Held-out rows for TRL's eval loop (used when eval_strategy != 'no'); "
                                         "None = <run_dir>/data/test.jsonl.")
        max_train_rows: int | None = _f(None, "Use at most this many training rows (None = all).")
        # ---- rewards ----
        reward_funcs: list = _f(["accuracy"], "Reward names from vvkit.rewards (summed with reward_weights).")
        gate: str = _f("multiply", "Format gate: 'multiply' (paper §4: R = R_format x R_task), 'add' (Video-R1) "
                                   "or 'none'.")
        reward_settings: dict = _f({}, "Other vvkit.rewards settings, passed through: judge ('offline' | 'http'), "
                                       "judge_base_url, judge_model, caption_alpha, open_ended_metric, ...")
        # ---- model options ----
        lora: dict | None = _f(None, "peft LoraConfig fields (e.g. {r: 8, lora_alpha: 16, target_modules: "
                                     "[q_proj, v_proj]}); None = full fine-tuning.")
        freeze_vision: bool = _f(False, "Freeze the vision tower (and its merger); only the language model learns.")
        # ---- T-GRPO (Video-R1 temporal contrast) ----
        tgrpo: bool = _f(False, "T-GRPO: also sample on frame-shuffled clips and reward correct ordered answers "
                                "when ordered accuracy >= tgrpo_ratio x shuffled accuracy (Video-R1).")
        tgrpo_alpha: float = _f(0.3, "T-GRPO bonus added to each correct ordered completion (Video-R1: 0.3).")
        tgrpo_ratio: float = _f(1.0, "T-GRPO ratio (Video-R1 code: 0.8; its maintainers say 1.0 was intended).")
        tgrpo_reward: str | None = _f(None, "Reward measuring correctness for T-GRPO; None = the first reward_funcs.")
        # ---- difficulty filter (paper §3) ----
        difficulty_filter_k: int = _f(0, "Before RL, sample k completions per row and drop rows where all k are "
                                         "correct (paper: k=5 at T=1.0); 0 = off.")
        difficulty_filter_temperature: float = _f(1.0, "Sampling temperature of the difficulty filter.")
        # ---- SFT warm start (not in the paper; Video-R1 does an SFT cold start) ----
        sft_steps: int = _f(0, "SFT warm-start steps on template reasoning before RL; 0 = start RL directly.")
        sft_lr: float = _f(1e-3, "SFT warm-start learning rate (1e-3 suits the tiny policy; far lower for 7B).")
        sft_batch_size: int = _f(8, "SFT warm-start rows per step.")
        sft_answer: str = _f("letter", "Warm-start answer to multiple choice: 'letter' (B) or 'text' (the option's "
                                       "words, e.g. red, which the parser maps to the letter, so RL need not learn "
                                       "the word-to-letter lookup).")
        # ---- logging ----
        save_completions: int = _f(8, "Completions per step written to <output_dir>/completions.jsonl (0 = none).")

        # ---- GRPOConfig / TrainingArguments defaults that differ for vvkit ----
        output_dir: str | None = _f(None, "Checkpoints and logs; None = <run_dir>/train/grpo.")
        bf16: bool | None = _f(None, "bf16 mixed precision; None = on when a bf16-capable GPU is present.")
        use_cpu: bool | None = _f(None, "Train on CPU; None = on when no GPU is present.")
        activation_checkpointing: bool | None = _f(False, "Recompute activations in backward (on for 7B, off for tiny).")
        gradient_checkpointing: bool | None = _f(None, "Deprecated transformers alias of activation_checkpointing.")
        logging_steps: float = _f(1, "Log metrics every N optimizer steps.")
        save_steps: float = _f(50, "Save a checkpoint (with the resolved config) every N optimizer steps.")
        report_to: Any = _f("tensorboard", "Trainer integrations; TensorBoard logs go to <output_dir>/tensorboard.")

        def __post_init__(self) -> None:
            if self.output_dir is None:
                self.output_dir = str(Path(self.run_dir) / "train" / "grpo")
            has_gpu = torch.cuda.is_available()
            if self.use_cpu is None:
                self.use_cpu = not has_gpu
            if self.bf16 is None:
                self.bf16 = bool(has_gpu and not self.use_cpu and torch.cuda.is_bf16_supported())
            if self.gate not in ("multiply", "add", "none"):
                raise ConfigError(f"grpo_training.gate = {self.gate!r}; use 'multiply', 'add' or 'none'")
            if "gate" in self.reward_settings:
                raise ConfigError("grpo_training.reward_settings sets 'gate'; set grpo_training.gate instead")
            if self.sft_answer not in ("letter", "text"):  # vvkit.train.SFT_ANSWERS
                raise ConfigError(f"grpo_training.sft_answer = {self.sft_answer!r}; use 'letter' or 'text'")
            if self.difficulty_filter_k < 0 or self.sft_steps < 0:
                raise ConfigError("grpo_training: difficulty_filter_k and sft_steps must be >= 0 (0 = off)")
            if self.lora is not None and not isinstance(self.lora, dict):
                raise ConfigError(f"grpo_training.lora must be a mapping of peft LoraConfig fields or null, "
                                  f"got {self.lora!r}")
            super().__post_init__()
            if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
                raise ConfigError(f"grpo_training: {len(self.reward_weights)} reward_weights for "
                                  f"{len(self.reward_funcs)} reward_funcs {self.reward_funcs}; give one per reward")

        def prompts_per_step(self) -> float:
            """Distinct prompts per optimizer step (TRL batches count completions, not prompts)."""
            return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size / (
                self.num_generations
            )

        def vvkit_fields(self) -> dict:
            """The fields vvkit adds to GRPOConfig, as a plain dict."""
            base = {f.name for f in dataclasses.fields(GRPOConfig)}
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in base}

    TrainConfig.__module__ = __name__
    TrainConfig.__qualname__ = "TrainConfig"
    globals()["TrainConfig"] = TrainConfig
    return TrainConfig


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        return _define_train_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
