"""Typed configs, the only home of every default, filled strictly from `params/*.yaml`.

A params file has one section per numbered notebook (`data_synthesis`, `reward_design`, `grpo_training`,
`analysis`) plus the shared sections every stage reads: `run` (name, seed, policy), `frames` (the one FramePolicy)
and `rewards` (the reward set, the format gate and the judge: training and evaluation score the same way). A
preset overrides defaults; notebooks receive the resolved sections (`stage_config`). Unknown keys and wrong types
are errors that name the file, the section and the key, as nanoGPT's configurator does, but with dataclasses.
`TrainConfig` (a `trl.GRPOConfig`) lives in `vvkit.grpo_config` so that this module imports no TRL.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vvkit.fields import ConfigError, _f, _type_ok, from_dict  # noqa: F401 (re-exported)
from vvkit.rewards.registry import RewardConfig  # noqa: F401 (re-exported: a shared section)

# Keys every stage config carries (see `stage_config`): the run folder, the seed, the frame policy, the policy path.
SHARED_KEYS = ("run_dir", "seed", "frames", "policy")
# Sections that are not a notebook's: read by every stage.
SHARED_SECTIONS = ("run", "frames", "rewards")

# The `run` section: what the runner itself needs, not passed to notebooks except `seed` and `policy`.
RUN_KEYS = {
    "name": "Run name; the folder is runs/<name>__seed<seed>__<time> unless --out is given.",
    "seed": "Seed for every generator and trainer in the run.",
    "policy": "Path of a saved policy (a local Qwen2.5-VL folder); null = the tiny offline policy built in the run.",
    "notebooks": "Which numbered notebooks to run, e.g. [1, 2]; null = all of them in order.",
}


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
class RewardDesignConfig(SharedConfig):
    """Notebook 02: the reward playground. The rewards themselves come from the shared `rewards` section."""

    rewards: dict = _f({}, "The resolved shared `rewards` section (RewardConfig fields); set by stage_config.")
    max_rows: int = _f(40, "Held-out rows scored when comparing the judge with exact answers.")

    def reward_config(self) -> RewardConfig:
        return from_dict(RewardConfig, dict(self.rewards), where="rewards")


@dataclass
class EvalConfig:
    """Decoding and scoring settings of one evaluation (paper §6: greedy, up to 2,048 new tokens); every field is
    recorded in the results header that decides whether a folder may be resumed."""

    frames: dict = _f({}, "FramePolicy fields of the evaluated clips.")
    batch_size: int = _f(16, "Prompts per batched generate during evaluation.")
    max_new_tokens: int = _f(2048, "Decoding budget per answer (paper: 2048; presets for the tiny policy set fewer).")
    do_sample: bool = _f(False, "Sample instead of greedy decoding (the paper evaluates greedy).")
    temperature: float = _f(1.0, "Sampling temperature when do_sample is true.")
    top_p: float = _f(1.0, "Nucleus sampling when do_sample is true.")
    seed: int = _f(0, "Shuffled-frame permutations (and sampling when do_sample).")
    prompt_style: str = _f("reason", "'reason' (think/answer template, the kit's), 'plain' (the benchmark's own "
                                     "instruction, how base models are evaluated in the paper's tables) or "
                                     "'authors' (the authors' wording and system turn).")
    rewards: dict = _f({}, "The shared `rewards` settings: the judge and open_ended_metric used to score answers.")
    progress: bool = _f(True, "Show a progress bar while generating.")
    engine: str = _f("hf", "Generation engine: 'hf' (transformers generate) or 'vllm' (a vLLM engine over the policy "
                           "folder, same prompts, frames and fps; needs .venv-vllm, docs/vllm.md).")

    def __post_init__(self) -> None:
        if self.engine not in ("hf", "vllm"):
            raise ConfigError(f"engine = {self.engine!r}; use 'hf' (transformers generate) or 'vllm'")

    def decoding(self) -> dict:
        """The settings that decide the generated text (recorded in every results header)."""
        d = {"do_sample": self.do_sample, "max_new_tokens": self.max_new_tokens, "prompt_style": self.prompt_style}
        if self.engine != "hf":  # headers written before the engine choice existed stay resumable
            d["engine"] = self.engine
        if self.do_sample:
            d.update(temperature=self.temperature, top_p=self.top_p)
        return d

    def reward_config(self) -> RewardConfig:
        return from_dict(RewardConfig, dict(self.rewards), where="rewards")


@dataclass
class AnalysisConfig(SharedConfig, EvalConfig):
    """Notebook 04: evaluation before and after GRPO, grounding diagnostics, benchmarks, the report. Its decoding
    fields are EvalConfig's, so `vvkit.evaluate.evaluate(policy, rows, cfg)` takes it as it is."""

    frames: dict = _f({}, "FramePolicy fields (the shared `frames` section).")
    seed: int = _f(0, "Seed for shuffled-frame permutations and sampling.")
    compare: list = _f(["start", "grpo"], "Policies to evaluate: 'start' (the policy GRPO started from), "
                       "'base' (the tiny or given policy), 'warm_start' (the SFT warm start), 'grpo' (the trained one), other names under <run_dir>/train, "
                       "or policy folders.")
    eval_data: str | None = _f(None, "Held-out rows (JSONL); None = <run_dir>/data/test.jsonl.")
    max_rows: int | None = _f(None, "Evaluate at most this many held-out rows (None = all).")
    rows_per_task: int | None = _f(None, "Evaluate the first this many held-out rows of every task (None = all); "
                                         "applied before max_rows.")
    diagnostics: list = _f(["video", "shuffled", "blank", "no_video"], "Grounding conditions to evaluate for every "
                           "compared policy; ['video'] = plain evaluation only.")
    grounding_margin: float = _f(0.05, "Warn when the video beats the best no-video condition by less than this.")
    benchmarks: dict = _f({}, "Optional local benchmark copies: {name: {format, path, video_root, frames, max_rows}}, "
                          "format one of videomme, mvbench, dream1k, nextqa.")
    n_completions: int = _f(24, "Completions shown in the viewer and written to completions.html, predictions.html.")

    def __post_init__(self) -> None:
        EvalConfig.__post_init__(self)
        from vvkit.rollout import CONDITIONS

        bad = [c for c in self.diagnostics if c not in CONDITIONS]
        if bad or "video" not in self.diagnostics:
            raise ConfigError(f"analysis.diagnostics = {self.diagnostics}: use conditions from {list(CONDITIONS)}, "
                              f"including 'video' (the plain evaluation the others are compared with)")
        if not self.compare:
            raise ConfigError("analysis.compare is empty; name at least one policy, e.g. [warm_start, grpo]")
        from vvkit.prompts import PROMPT_STYLES

        if self.prompt_style not in PROMPT_STYLES:
            raise ConfigError(f"analysis.prompt_style = {self.prompt_style!r}; use one of {list(PROMPT_STYLES)}")


# Section name in params/*.yaml -> "module:Class" of its config (imported lazily: TrainConfig imports TRL).
SECTION_CONFIGS: dict[str, str] = {
    "data_synthesis": "vvkit.config:SynthConfig",
    "reward_design": "vvkit.config:RewardDesignConfig",
    "grpo_training": "vvkit.grpo_config:TrainConfig",
    "analysis": "vvkit.config:AnalysisConfig",
}


def section_config(section: str) -> type:
    """The dataclass that validates one params section."""
    if section not in SECTION_CONFIGS:
        raise ConfigError(f"unknown params section {section!r}; known: {sorted(SECTION_CONFIGS)} and the shared "
                          f"sections {list(SHARED_SECTIONS)}")
    mod, _, name = SECTION_CONFIGS[section].partition(":")
    import importlib

    return getattr(importlib.import_module(mod), name)


def read_params(path: str | Path) -> dict:
    """The raw mapping of a params file, with a named error for a missing file or bad YAML."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found (presets live in params/, e.g. params/default.yaml)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return params


def stage_config(params: dict, section: str, run_dir: str | Path | None = None, overrides: dict | None = None,
                 where: str = "params") -> Any:
    """The resolved config of one stage: its section over the dataclass defaults, the shared keys (`run.seed`,
    `run.policy`, `frames`) and, for stages that score, the shared `rewards` section with the stage's own `rewards:`
    keys over it; `overrides` (a notebook's knobs, `--set`) win. Every unknown key is an error naming it."""
    cls = section_config(section)
    run = params.get("run") or {}
    values = dict(params.get(section) or {})
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: section {section!r} must be a mapping")
    values.update(overrides or {})
    clash = sorted(set(values) & set(SHARED_KEYS) - {"run_dir"})
    if clash:
        raise ConfigError(f"{where}: section {section!r} sets shared key(s) {clash}; set them under 'run' / 'frames'")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    shared = {"run_dir": str(run_dir or Path("runs") / str(run.get("name", "interactive"))),
              "seed": int(run.get("seed", 0)), "frames": dict(params.get("frames") or {}), "policy": run.get("policy")}
    if "rewards" in names:
        own = values.pop("rewards", None) or {}
        if not isinstance(own, dict):
            raise ConfigError(f"{where}: {section}.rewards must be a mapping of reward settings")
        rewards = {**(params.get("rewards") or {}), **own}
        from_dict(RewardConfig, rewards, where=f"{where}: section 'rewards'")
        shared["rewards"] = rewards
    return from_dict(cls, {**{k: v for k, v in shared.items() if k in names}, **values},
                     where=f"{where}: section {section!r}")


def load_params(path: str | Path) -> dict:
    """Read and validate a params file: every section and key must be known, every value well typed. Every section
    is checked, and one error lists all that is wrong in the file, so one edit fixes them all."""
    params = read_params(path)
    errors: list[str] = []

    def check(fn: Any, *args: Any, **kw: Any) -> None:
        try:
            fn(*args, **kw)
        except ConfigError as e:
            if str(e) not in errors:  # the shared `rewards` section is checked again inside each scoring stage
                errors.append(str(e))

    stages = dict(params)  # each stage is still checked, without a broken shared section (reported once)
    for name, checker in (("run", _check_run), ("frames", _check_frames), ("rewards", _check_rewards)):
        n = len(errors)
        check(checker, params.get(name, {}) or {}, path)
        if len(errors) > n:
            stages[name] = {}
    for section in params:
        if section not in SHARED_SECTIONS:
            check(stage_config, stages, section, run_dir="runs/check", where=str(path))
    if len(errors) == 1:
        raise ConfigError(errors[0])
    if errors:
        raise ConfigError(f"{path}: {len(errors)} errors:\n" + "\n".join(f"  - {e}" for e in errors))
    return params


def _check_run(run: Any, path: str | Path) -> None:
    if not isinstance(run, dict):
        raise ConfigError(f"{path}: section 'run' must be a mapping of {sorted(RUN_KEYS)}")
    problems = []
    unknown = sorted(set(run) - set(RUN_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {unknown}; valid: {sorted(RUN_KEYS)}")
    seed = run.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed = {seed!r} should be an integer, e.g. seed: 0")
    if problems:
        raise ConfigError(f"{path}: section 'run': " + "; ".join(problems))


def _check_rewards(rewards: Any, path: str | Path) -> None:
    if not isinstance(rewards, dict):
        raise ConfigError(f"{path}: section 'rewards' must be a mapping of reward settings")
    from_dict(RewardConfig, dict(rewards), where=f"{path}: section 'rewards'")


def _check_frames(frames: Any, path: str | Path) -> None:
    from vvkit.video import FramePolicy

    try:
        FramePolicy.from_dict(frames)
    except (TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{path}: section 'frames': {e}") from None


def parse_overrides(items: list[str]) -> dict:
    """`KEY=VALUE` strings (YAML values) as a dict; "5e-5" reads as a number, as a user means it."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set max_steps=10")
        value = yaml.safe_load(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-5" as text; a number was meant
            try:
                value = float(value)
            except ValueError:
                pass
        out[key] = value
    return out
