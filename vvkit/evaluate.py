"""Batched, resumable evaluation of a policy on vvkit rows (grounding diagnostics build on it: vvkit.diagnostics).

Protocol (paper §6): greedy decoding, answers parsed and judged by the same code as the training rewards
(`vvkit.rewards.score_completion`), metrics per task: MCQ accuracy, open-ended judge score, DarkEventInfer mean and
sum of 0/1/2, MixVidQA accuracy, caption AutoDQ precision/recall/F1, and the format rate. Every result file records
the frame policy, PROMPT_VERSION, the decoding settings and the policy, so a number can be reproduced (the most
requested fix in Video-R1's issues, #11, #47). `prepare_prompt` builds the four input conditions (real, shuffled,
blank, no video) that `vvkit.diagnostics.diagnose` compares.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vvkit.io import append_jsonl, atomic_write_json
from vvkit.schema import Row

CONDITIONS = ("video", "shuffled", "blank", "no_video")
NO_INFO_CONDITIONS = ("blank", "no_video")  # conditions that carry nothing about the content of the video
RESULTS_FILE, PREDICTIONS_FILE = "results.json", "predictions.jsonl"
# Header keys that must match for a folder to be resumed (batch size changes batching, not the answers asked for).
RESUME_KEYS = ("policy", "condition", "frames", "prompt_version", "decoding", "judge", "open_ended_metric", "seed")


@dataclass
class EvalConfig:
    """Decoding and scoring settings of one evaluation (paper §6: greedy, up to 2,048 new tokens)."""

    frames: dict = field(default_factory=dict)  # FramePolicy fields
    batch_size: int = 8
    max_new_tokens: int = 2048
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0  # shuffled-frame permutations (and sampling when do_sample)
    judge: str | dict = "offline"  # "offline", "http", or reward settings {"judge": ..., "judge_base_url": ...}
    open_ended_metric: str = "judge"  # open_ended rows: the judge's verdict (or rouge_mean / rouge_l / embedding)
    progress: bool = True

    def decoding(self) -> dict:
        """The settings that decide the generated text (recorded in every results header)."""
        d = {"do_sample": self.do_sample, "max_new_tokens": self.max_new_tokens}
        if self.do_sample:
            d.update(temperature=self.temperature, top_p=self.top_p)
        return d


def as_eval_config(cfg: Any) -> EvalConfig:
    """An EvalConfig from an EvalConfig, a dict, or any config with the same field names (e.g. AnalysisConfig)."""
    if isinstance(cfg, EvalConfig):
        return cfg
    names = [f.name for f in dataclasses.fields(EvalConfig)]
    if isinstance(cfg, dict):
        unknown = sorted(set(cfg) - set(names))
        if unknown:
            raise ValueError(f"EvalConfig: unknown key(s) {unknown}; valid keys: {names}")
        return EvalConfig(**cfg)
    return EvalConfig(**{n: getattr(cfg, n) for n in names if hasattr(cfg, n)})


# ---- inputs per condition ---------------------------------------------------------------------------------------

@dataclass
class Prompt:
    """One row ready for generation under one condition: chat messages, and frames unless the video is withheld."""

    row: Row
    condition: str
    messages: list[dict]
    frames: np.ndarray | None  # (T, H, W, 3) uint8; None for no_video
    fps: float | None  # sampled fps of the real clip (kept for shuffled/blank so only the pixels change)


def row_seed(seed: int, row_id: str) -> np.random.Generator:
    """A generator fixed by (seed, row id): the same row gets the same shuffle in every run and every batch."""
    return np.random.default_rng([int(seed), zlib.crc32(row_id.encode())])


def condition_frames(frames: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Real frames (`video`), a permutation of them (`shuffled`, never the identity when T > 1) or zeros (`blank`)."""
    if condition == "video":
        return frames
    if condition == "shuffled":
        perm = rng.permutation(len(frames))
        if len(frames) > 1 and np.array_equal(perm, np.arange(len(frames))):
            perm = np.roll(perm, 1)
        return frames[perm]
    if condition == "blank":
        return np.zeros_like(frames)
    raise ValueError(f"condition {condition!r} has frames; choose one of {CONDITIONS}")


def strip_video(messages: list[dict]) -> list[dict]:
    """The same chat without its video parts (the no-video condition: the prompt text alone)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "video"]
        out.append({**m, "content": content})
    return out


def prepare_prompt(row: Row, policy: Any, condition: str, seed: int = 0) -> Prompt:
    """Decode the row's video through the frame policy (edits, and `meta["window"]` = [start, end] seconds as MVBench
    gives, applied) and apply `condition`."""
    from vvkit.prompts import row_to_messages

    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r} unknown; choose one of {CONDITIONS}")
    messages = row_to_messages(row)
    if condition == "no_video":
        return Prompt(row, condition, strip_video(messages), None, None)
    from vvkit.video import read_video

    start, end = row.meta.get("window") or (None, None)
    clip = read_video(row.video, policy, start=start, end=end, edits=row.edits)
    frames = condition_frames(clip.frames, condition, row_seed(seed, row.id))
    return Prompt(row, condition, messages, frames, float(clip.sampled_fps))


# ---- generation ---------------------------------------------------------------------------------------------------

def generate_answers(model: Any, processor: Any, batch: Sequence[Prompt], gen_cfg: EvalConfig) -> list[str]:
    """One left-padded batched `generate` over prepared prompts; returns the decoded completions.

    Video prompts are encoded exactly as the GRPO rollouts are (`vvkit.trainer.encode_prompt` / `collate_prompts`,
    real sampled fps); no-video prompts are the same chat without the video part.
    """
    import torch

    from vvkit.trainer import collate_prompts, encode_prompt

    tok = processor.tokenizer
    if any(p.frames is None for p in batch) and any(p.frames is not None for p in batch):
        raise ValueError("a batch mixes prompts with and without video; evaluate one condition per call")
    if batch[0].frames is not None:
        encoded = [encode_prompt(processor, p.messages, [(p.frames, p.fps)]) for p in batch]
        video_id = tok.convert_tokens_to_ids("<|video_pad|>")
        image_id = tok.convert_tokens_to_ids("<|image_pad|>")
        inputs = collate_prompts(encoded, tok.pad_token_id, video_id, image_id)
    else:
        texts = [processor.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True) for p in batch]
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):  # left padding: generation appends at the right end of every row
            input_ids[i, width - len(x):] = torch.tensor(x)
            mask[i, width - len(x):] = 1
        inputs = {"input_ids": input_ids, "attention_mask": mask, "mm_token_type_ids": torch.zeros_like(input_ids)}
    device = next(model.parameters()).device
    inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
    kwargs = dict(max_new_tokens=gen_cfg.max_new_tokens, do_sample=gen_cfg.do_sample, pad_token_id=tok.pad_token_id)
    if gen_cfg.do_sample:
        kwargs.update(temperature=gen_cfg.temperature, top_p=gen_cfg.top_p)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
    finally:
        if was_training:
            model.train()
    return tok.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


GenerateFn = Callable[[Any, Any, Sequence[Prompt], EvalConfig], list[str]]


# ---- metrics ------------------------------------------------------------------------------------------------------

def _mean(xs: Sequence[float]) -> float:
    xs = [float(x) for x in xs if x is not None]
    return float(np.mean(xs)) if xs else math.nan


def task_metrics(preds: Sequence[dict]) -> dict:
    """Metrics of one task's prediction records (all of one problem_type); `primary` is the headline in [0, 1]."""
    task = preds[0]["problem_type"]
    m: dict[str, Any] = {"n": len(preds), "format_rate": _mean([p["format"] for p in preds])}
    scores = [p["score"] for p in preds]
    if task in ("mcq", "mixvid"):
        m["accuracy"] = _mean(scores)
        m["primary"] = m["accuracy"]
        if task == "mcq":
            m["chance"] = _mean([1.0 / p["n_options"] for p in preds if p.get("n_options")])
    elif task == "dark_event":  # judge 0/1/2 per answer; the paper reports the sum over the test set (e.g. 117.0)
        m["score_mean"], m["score_sum"] = _mean(scores), float(sum(float(s) for s in scores if s is not None))
        m.update({f"n_score_{k}": sum(1 for s in scores if s == k) for k in (0, 1, 2)})
        m["primary"] = m["score_mean"] / 2.0
    elif task == "caption":  # DREAM-1K: precision and recall averaged over videos, F1 of the two averages
        p, r = _mean([x.get("precision") for x in preds]), _mean([x.get("recall") for x in preds])
        m.update(precision=p, recall=r, f1=2 * p * r / (p + r) if p + r > 0 else (0.0 if p + r == 0 else math.nan))
        m["primary"] = m["f1"]
    else:  # open_ended: mean judge score
        m["score"] = _mean(scores)
        m["primary"] = m["score"]
    return m


def summarize(preds: Sequence[dict]) -> dict:
    """{task: metrics} plus "overall" (rows, format rate, mean primary over tasks) for prediction records."""
    by_task: dict[str, list[dict]] = {}
    for p in preds:
        by_task.setdefault(p["problem_type"], []).append(p)
    out = {t: task_metrics(ps) for t, ps in sorted(by_task.items())}
    out["overall"] = {"n": len(preds), "format_rate": _mean([p["format"] for p in preds]),
                      "primary_mean": _mean([m["primary"] for m in out.values()])}
    return out


def score_batch(prompts: Sequence[Prompt], completions: Sequence[str], judge: Any, gen_cfg: EvalConfig) -> list[dict]:
    """Prediction records: the completion, its parse and scores from the reward module (`score_completion`'s
    batched form: one judge call per task per batch), plus the paper's gated reward."""
    from vvkit.rewards import gate, score_batch as score_texts

    rows = [p.row for p in prompts]
    scored = score_texts(list(completions), [r.solution for r in rows], [r.problem_type for r in rows],
                         [r.options for r in rows], [r.problem for r in rows], judge,
                         open_ended_metric=gen_cfg.open_ended_metric)
    recs = []
    for p, text, s in zip(prompts, completions, scored):
        row = p.row
        recs.append({"id": row.id, "problem_type": row.problem_type, "source": row.source, "condition": p.condition,
                     "n_options": len(row.options) if row.options else None, "solution": row.solution,
                     "completion": text, **s, "reward": gate(s["format"], s["score"])})
    return recs


# ---- one evaluation ---------------------------------------------------------------------------------------------

@dataclass
class EvalResult:
    """Metrics per task, the prediction records and the header of one (policy, condition) evaluation."""

    header: dict
    metrics: dict
    predictions: list[dict]
    out_dir: Path | None = None

    def table(self) -> Any:
        """Tasks x metrics as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame({t: m for t, m in self.metrics.items()}).T

    def primary(self) -> dict[str, float]:
        """{task: headline number in [0, 1]}."""
        return {t: m["primary"] for t, m in self.metrics.items() if t != "overall"}


def make_judge(cfg: EvalConfig) -> Any:
    """The judge the rewards would use: `cfg.judge` is "offline", "http", or a dict of reward settings (`judge`,
    `judge_base_url`, `judge_model`, `judge_dark_full`, ...; see vvkit.rewards.DEFAULT_SETTINGS)."""
    from vvkit.rewards import get_judge

    return get_judge(**(dict(cfg.judge) if isinstance(cfg.judge, dict) else {"judge": cfg.judge}))


def policy_pair(policy: Any) -> tuple[Any, Any, str]:
    """(model, processor, path) from a policy folder (loaded) or a (model, processor) pair."""
    if isinstance(policy, (str, os.PathLike)):
        from vvkit.model import load_policy

        model, processor = load_policy(policy)
        return model, processor, str(policy)
    if isinstance(policy, (tuple, list)) and len(policy) == 2:
        model, processor = policy
        return model, processor, str(getattr(model, "name_or_path", "") or "<in-memory policy>")
    raise TypeError(f"policy must be a folder path or a (model, processor) pair, got {type(policy).__name__}")


def _read_predictions(path: Path) -> list[dict]:
    """Finished prediction records; a torn last line (a crash mid-append) is dropped loudly and redone, any other
    damage is an error naming the line."""
    import json

    from vvkit.io import atomic_write_text, read_jsonl

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    try:
        json.loads(lines[-1]) if lines and lines[-1].strip() else None
    except json.JSONDecodeError:
        atomic_write_text(path, "".join(lines[:-1]))
        print(f"[vvkit] {path}: dropped a torn last line (interrupted write); that batch is evaluated again")
    return read_jsonl(path)


def _check_resume(out_dir: Path, header: dict) -> None:
    old_path = out_dir / RESULTS_FILE
    if not old_path.exists():
        raise RuntimeError(f"{out_dir / PREDICTIONS_FILE} exists without {RESULTS_FILE}: cannot tell how it was "
                           f"made; delete the folder or pass another out_dir")
    import json

    old = json.loads(old_path.read_text())
    diff = [k for k in RESUME_KEYS if old.get(k) != header.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} -> {header.get(k)!r}" for k in diff)
        raise RuntimeError(f"{old_path}: this folder was evaluated with other settings ({shown}); resuming would mix "
                           f"them. Delete the folder or pass another out_dir.")


def evaluate(policy: Any, rows: Sequence[Row], cfg: Any, out_dir: str | os.PathLike | None = None,
             condition: str = "video", generate_fn: GenerateFn | None = None, judge: Any = None,
             policy_name: str | None = None, policy_path: str | None = None) -> EvalResult:
    """Generate, score and summarise `rows` under `condition`; with `out_dir`, predictions are appended per batch
    to predictions.jsonl and rows already there are not redone (resume), and results.json is written atomically."""
    from tqdm.auto import tqdm

    from vvkit.prompts import PROMPT_VERSION
    from vvkit.video import FramePolicy

    cfg = as_eval_config(cfg)
    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r} unknown; choose one of {CONDITIONS}")
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("rows have duplicate ids; evaluation keys predictions by id")
    frame_policy = FramePolicy.from_dict(dict(cfg.frames))
    model = processor = None
    if isinstance(policy, (str, os.PathLike)):
        path = str(Path(policy).resolve())  # loaded below, only if some row still needs an answer
    else:
        model, processor, path = policy_pair(policy)
    generate_fn = generate_fn or generate_answers
    path = policy_path or path
    default_name = Path(path).parent.name if Path(path).name in ("final", "policy") else Path(path).name
    header = {"policy": path, "policy_name": policy_name or default_name, "condition": condition,
              "frames": frame_policy.to_dict(), "prompt_version": PROMPT_VERSION, "decoding": cfg.decoding(),
              "batch_size": cfg.batch_size, "judge": cfg.judge, "open_ended_metric": cfg.open_ended_metric,
              "seed": cfg.seed}

    done: dict[str, dict] = {}
    pred_path = Path(out_dir) / PREDICTIONS_FILE if out_dir is not None else None
    if pred_path is not None:
        if pred_path.exists():
            _check_resume(pred_path.parent, header)
            done = {p["id"]: p for p in _read_predictions(pred_path)}
        atomic_write_json(pred_path.parent / RESULTS_FILE,
                          {**header, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    todo = [r for r in rows if r.id not in done]
    judge = judge if judge is not None else make_judge(cfg)
    if todo and model is None and generate_fn is generate_answers:
        model, processor, _ = policy_pair(policy)
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), disable=not cfg.progress,
               desc=f"eval {header['policy_name']}/{condition}")
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start:start + cfg.batch_size]
        prompts = [prepare_prompt(r, frame_policy, condition, cfg.seed) for r in chunk]
        if cfg.do_sample:
            import torch

            torch.manual_seed(cfg.seed + start)
        texts = generate_fn(model, processor, prompts, cfg)
        if len(texts) != len(prompts):
            raise RuntimeError(f"generate_fn returned {len(texts)} answers for {len(prompts)} prompts")
        for rec in score_batch(prompts, texts, judge, cfg):
            done[rec["id"]] = rec
            if pred_path is not None:
                append_jsonl(pred_path, rec)
        bar.update(len(chunk))
    bar.close()
    preds = [done[i] for i in ids]
    metrics = summarize(preds)
    result = EvalResult({**header, "status": "done", "n_rows": len(rows)}, metrics, preds,
                        pred_path.parent if pred_path is not None else None)
    if pred_path is not None:
        atomic_write_json(pred_path.parent / RESULTS_FILE,
                          {**result.header, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "metrics": metrics})
    return result


def load_result(folder: str | os.PathLike) -> EvalResult:
    """An EvalResult read back from a results folder (results.json + predictions.jsonl)."""
    import json

    folder = Path(folder)
    if not (folder / RESULTS_FILE).is_file():
        raise FileNotFoundError(f"{folder / RESULTS_FILE}: no evaluation results here (run vvkit.evaluate.evaluate)")
    data = json.loads((folder / RESULTS_FILE).read_text())
    metrics = data.pop("metrics", None)
    if metrics is None:
        raise RuntimeError(f"{folder / RESULTS_FILE}: evaluation did not finish (status {data.get('status')!r}); "
                           f"run it again with the same out_dir to resume")
    preds = _read_predictions(folder / PREDICTIONS_FILE) if (folder / PREDICTIONS_FILE).exists() else []
    return EvalResult(data, metrics, preds, folder)


def policy_dir(run_dir: str | os.PathLike, name: str, policy: str | None = None) -> Path:
    """Where a named policy of a run lives (the folder layout of vvkit.train): 'base' = `policy` or the tiny policy
    at <run_dir>/policy/tiny; 'warm_start' = the policy GRPO started from (train/warm_start/policy, or the base when
    the run had no SFT warm start); 'grpo' and other stage names = train/<name>/final; anything else, a folder."""
    import json

    run_dir = Path(run_dir)
    if name == "base":
        path = Path(policy) if policy else run_dir / "policy" / "tiny"
    elif name == "warm_start":
        path = run_dir / "train" / "warm_start" / "policy"
        cfg_file = run_dir / "train" / "grpo" / "train_config.json"
        if not path.is_dir() and cfg_file.is_file() and not json.loads(cfg_file.read_text()).get("sft_steps"):
            base = policy_dir(run_dir, "base", json.loads(cfg_file.read_text()).get("policy") or policy)
            print(f"[vvkit] warm_start: this run had no SFT warm start (sft_steps=0); GRPO started from {base}")
            return base
    elif (run_dir / "train" / name).is_dir():
        path = run_dir / "train" / name / "final"
    else:
        path = Path(name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"policy {name!r}: no saved policy at {path} (no config.json). 'base' is built by "
                                f"notebook 01/03, 'warm_start' and 'grpo' by notebook 03 (vvkit.train.train); or "
                                f"give a policy folder.")
    return path


__all__ = ["CONDITIONS", "EvalConfig", "EvalResult", "Prompt", "as_eval_config", "condition_frames", "evaluate",
           "generate_answers", "load_result", "make_judge", "policy_dir", "policy_pair", "prepare_prompt",
           "strip_video", "summarize"]
