"""Batched, resumable evaluation of a policy on vvkit rows (grounding diagnostics build on it: vvkit.diagnostics).

Protocol (paper §6): greedy decoding, answers parsed and judged by the same code as the training rewards
(`vvkit.rewards.score_batch`), metrics per task: MCQ accuracy, open-ended judge score, DarkEventInfer mean and
sum of 0/1/2, MixVidQA accuracy, caption AutoDQ precision/recall/F1, and the format rate. Prompts go through the same
row -> frames -> prompt -> generate path as training (`vvkit.rollout`). Every result file records the frame policy,
PROMPT_VERSION, the decoding settings, the scoring settings and the policy, so a number can be reproduced (the most
requested fix in Video-R1's issues, #11, #47).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vvkit.config import EvalConfig
from vvkit.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from vvkit.model import load_policy
from vvkit.prompts import PROMPT_VERSION, row_to_messages
from vvkit.rewards import RewardConfig, make_judge, score_rows
from vvkit.rollout import (CONDITIONS, NO_INFO_CONDITIONS, encode_prompt, generate, load_clips, sample_rows,
                           strip_video)
from vvkit.rundir import FINAL_NAMES, RunDir
from vvkit.schema import HEADLINE_METRIC, Row
from vvkit.video import FramePolicy

RESULTS_FILE, PREDICTIONS_FILE = "results.json", "predictions.jsonl"
# Header keys that must match for a folder to be resumed (batch size changes batching, not the answers asked for).
RESUME_KEYS = ("policy", "condition", "frames", "prompt_version", "decoding", "scoring", "seed")
# Reward settings that change a score (recorded as the header's "scoring").
SCORING_KEYS = ("gate", "open_ended_metric", "strict_format", "caption_alpha", "judge", "judge_model", "judge_dark_full",
                "judge_dark_partial", "judge_mixvid_threshold", "judge_entail_threshold", "judge_lexicon")


# ---- inputs per condition ---------------------------------------------------------------------------------------

@dataclass
class Prompt:
    """One row ready for generation under one condition: chat messages, and frames unless the video is withheld."""

    row: Row
    condition: str
    messages: list[dict]
    frames: np.ndarray | None  # (T, H, W, 3) uint8; None for no_video
    fps: float | None  # sampled fps of the real clip (kept for shuffled/blank so only the pixels change)


def prepare_prompt(row: Row, policy: Any, condition: str, seed: int = 0, prompt_style: str = "reason") -> Prompt:
    """The row's frames under `condition` (`vvkit.rollout.load_clips`: edits and `meta["window"]` applied) and
    its chat messages."""
    messages = row_to_messages(row, style=prompt_style)
    clips = load_clips(row, policy, condition, seed)
    if not clips:
        return Prompt(row, condition, strip_video(messages), None, None)
    (frames, fps), = clips
    return Prompt(row, condition, messages, frames, fps)


# ---- generation ---------------------------------------------------------------------------------------------------

def generate_answers(model: Any, processor: Any, batch: Sequence[Prompt], gen_cfg: EvalConfig) -> list[str]:
    """Encode prepared prompts and run the engine's one generation loop over them: `vvkit.rollout.generate` (hf) or
    `vvkit.vllm_engine.generate` (vllm, the same encoded prompts with the same frames and fps)."""
    clips = [[] if p.frames is None else [(p.frames, p.fps)] for p in batch]
    encoded = [encode_prompt(processor, p.messages, c) for p, c in zip(batch, clips)]
    temperature = gen_cfg.temperature if gen_cfg.do_sample else 0.0
    if gen_cfg.engine == "vllm":
        from vvkit import vllm_engine

        texts = vllm_engine.generate(vllm_engine.engine_for(model), processor, encoded, clips, n=1,
                                     temperature=temperature, max_new_tokens=gen_cfg.max_new_tokens,
                                     top_p=gen_cfg.top_p)
    else:
        texts = generate(model, processor, encoded, n=1, temperature=temperature,
                         max_new_tokens=gen_cfg.max_new_tokens, top_p=gen_cfg.top_p, batch_size=len(encoded))
    return [t[0] for t in texts]


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


EVAL_READING = "any"  # evaluation reads an answer wherever it is (vvkit.rewards.parsing.mcq_choice); rewards do not


def prediction_records(prompts: Sequence[Prompt], completions: Sequence[str], judge: Any, gen_cfg: EvalConfig) -> list[dict]:
    """Prediction records: the completion, its reading and scores from the reward module (`score_rows`: one judge
    call per task per batch; answers read with or without <answer> tags, as the published scorers read base
    models), plus the paper's gated reward (which still requires the format)."""
    rows = [p.row for p in prompts]
    scored = score_rows(list(completions), rows, gen_cfg.reward_config(), judge, reading=EVAL_READING)
    return [{"id": p.row.id, "problem_type": p.row.problem_type, "source": p.row.source, "condition": p.condition,
             "n_options": len(p.row.options) if p.row.options else None, "solution": p.row.solution,
             "completion": text, **s} for p, text, s in zip(prompts, completions, scored)]


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


def scoring(cfg: EvalConfig) -> dict:
    """The reward settings that decide a score, for the results header."""
    settings = cfg.reward_config().settings()
    return {"reading": EVAL_READING, **{k: settings[k] for k in SCORING_KEYS}}


def run_judge(cfg: Any) -> Any:
    """The judge a config's reward settings name, with the run folder's judge cache when the config has a run folder
    (AnalysisConfig), so evaluation and diagnostics reuse the replies training cached."""
    return make_judge(**cfg.reward_config().settings(getattr(cfg, "run_dir", None)))


def policy_pair(policy: Any) -> tuple[Any, Any, str]:
    """(model, processor, path) from a policy folder (loaded) or a (model, processor) pair."""
    if isinstance(policy, (str, os.PathLike)):
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

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    try:
        json.loads(lines[-1]) if lines and lines[-1].strip() else None
    except json.JSONDecodeError:
        atomic_write_text(path, "".join(lines[:-1]))
        print(f"[vvkit] {path}: dropped a torn last line (interrupted write); that batch is evaluated again")
    return read_jsonl(path)


def _same_policy(old: str | None, new: str | None, out_dir: Path) -> bool:
    """Whether a results folder was made by the policy now evaluated, so a copied or moved run folder resumes its own
    results: the same path; or, for a policy inside the run folder (the folder above `out_dir` holding params.yaml or
    run.json, else the one holding both), the same path relative to it; or the same content (config.json and the
    names and sizes of the folder's files)."""
    import hashlib

    if old == new:
        return True
    if not old or not new:
        return False
    old_p, new_p = Path(old), Path(new).resolve()
    out_dir = out_dir.resolve()
    marked = [d for d in out_dir.parents if RunDir(d).params.is_file() or RunDir(d).state.is_file()]
    root = marked[0] if marked else next((d for d in out_dir.parents if new_p.is_relative_to(d)), None)
    if root is not None and root.parent != root and new_p.is_relative_to(root):
        rel = new_p.relative_to(root).parts
        if rel and old_p.parts[-len(rel):] == rel:
            return True

    def content(folder: Path) -> str | None:
        if not (folder / "config.json").is_file():
            return None
        h = hashlib.sha256((folder / "config.json").read_bytes())
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            h.update(f"{f.name}:{f.stat().st_size};".encode())
        return h.hexdigest()

    return content(new_p) is not None and content(new_p) == content(old_p)


def _check_resume(out_dir: Path, header: dict) -> None:
    old_path = out_dir / RESULTS_FILE
    if not old_path.exists():
        raise RuntimeError(f"{out_dir / PREDICTIONS_FILE} exists without {RESULTS_FILE}: cannot tell how it was "
                           f"made; delete the folder or pass another out_dir")
    import json

    old = json.loads(old_path.read_text())
    diff = [k for k in RESUME_KEYS if old.get(k) != header.get(k)
            and not (k == "policy" and _same_policy(old.get(k), header.get(k), out_dir))]
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

    if not isinstance(cfg, EvalConfig):
        raise TypeError(f"cfg must be an EvalConfig (or AnalysisConfig), got {type(cfg).__name__}")
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
    default_name = Path(path).parent.name if Path(path).name in FINAL_NAMES else Path(path).name
    header = {"policy": path, "policy_name": policy_name or default_name, "condition": condition,
              "frames": frame_policy.to_dict(), "prompt_version": PROMPT_VERSION, "decoding": cfg.decoding(),
              "batch_size": cfg.batch_size, "scoring": scoring(cfg), "seed": cfg.seed}

    done: dict[str, dict] = {}
    pred_path = Path(out_dir) / PREDICTIONS_FILE if out_dir is not None else None
    if pred_path is not None:
        if pred_path.exists():
            _check_resume(pred_path.parent, header)
            done = {p["id"]: p for p in _read_predictions(pred_path)}
        atomic_write_json(pred_path.parent / RESULTS_FILE,
                          {**header, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    todo = [r for r in rows if r.id not in done]
    judge = judge if judge is not None else run_judge(cfg)
    if todo and model is None and generate_fn is generate_answers:
        model, processor, _ = policy_pair(policy)
    name = f"{header['policy_name']}/{condition}"
    t0 = time.perf_counter()
    # a bar only for work being done (a cached evaluation prints one line), left on screen when it ends
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), disable=not cfg.progress or not todo,
               desc=f"eval {name}", leave=True)
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start:start + cfg.batch_size]
        prompts = [prepare_prompt(r, frame_policy, condition, cfg.seed, cfg.prompt_style) for r in chunk]
        if cfg.do_sample:
            import torch

            torch.manual_seed(cfg.seed + start)
        texts = generate_fn(model, processor, prompts, cfg)
        if len(texts) != len(prompts):
            raise RuntimeError(f"generate_fn returned {len(texts)} answers for {len(prompts)} prompts")
        for rec in prediction_records(prompts, texts, judge, cfg):
            done[rec["id"]] = rec
            if pred_path is not None:
                append_jsonl(pred_path, rec)
        bar.update(len(chunk))
    bar.close()
    preds = [done[i] for i in ids]
    metrics = summarize(preds)
    if cfg.progress:
        what = f"{len(todo)} generated in {time.perf_counter() - t0:.0f} s" if todo else "all cached"
        print(f"[vvkit] eval {name}: {len(rows)} rows ({what}), mean primary "
              f"{metrics['overall']['primary_mean']:.3f}, format rate {metrics['overall']['format_rate']:.2f}")
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
    """Where a named policy of a run lives (`vvkit.run.RunDir.policy`)."""
    return RunDir(run_dir).policy(name, policy)


def sample_and_score(model: Any, processor: Any, rows: Sequence[Row], rewards: RewardConfig | dict,
                     frames: dict, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 64,
                     judge: Any = None, reading: str = "tagged", seed: int | None = None,
                     batch_size: int = 64) -> list[list[dict]]:
    """`n` completions per row through the one input path and generation loop (`vvkit.rollout.sample_rows`), each
    scored by the one scorer with the run's reward settings (`vvkit.rewards.score_rows`): what notebook 03's
    before/after table, the difficulty filter and `accuracy_hook` share, so all of them grade an answer as GRPO
    does. Records carry the `completion` text; `seed` (if given) seeds sampling."""
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    texts = sample_rows(model, processor, rows, frames, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                        batch_size=batch_size)
    flat = score_rows([t for ts in texts for t in ts], [r for r, ts in zip(rows, texts) for _ in ts], rewards, judge,
                      reading)
    out, i = [], 0
    for ts in texts:
        out.append([{**rec, "completion": t} for rec, t in zip(flat[i:i + len(ts)], ts)])
        i += len(ts)
    return out


def accuracy_hook(rows: Sequence[Row], frames: dict, rewards: RewardConfig | dict, judge: Any = None,
                  max_new_tokens: int = 64) -> Callable:
    """A `train(..., eval_fn=...)` hook: greedy accuracy and format rate on held-out rows, scored with the run's
    reward settings (`sample_and_score`)."""

    def run(model: Any, processor: Any) -> dict:
        scored = [g[0] for g in sample_and_score(model, processor, rows, rewards, frames, judge=judge,
                                                 max_new_tokens=max_new_tokens)]
        return {"accuracy": float(np.mean([bool(s["correct"]) for s in scored])),
                "format_rate": float(np.mean([s["format"] for s in scored]))}

    return run


# ---- the study's number per task ----
def task_score(task: str, metrics: dict) -> float:
    """The study's number per task: DarkEventInfer mean judge score (0-2), MixVidQA / multiple-choice accuracy,
    open-ended mean judge verdict, caption AutoDQ F1."""
    return float(metrics[HEADLINE_METRIC[task]])


def task_scores(policy: Any, rows: Sequence[Row], ecfg: Any, conditions: Sequence[str] = ("video", "blank"),
                out_dir: Path | None = None, judge: Any = None) -> dict[str, dict[str, float]]:
    """{task: {condition: score}} for every task present, evaluated under each condition ('video' is reported as
    'score', with its format rate); with `out_dir`, predictions land in `<out_dir>/<condition>/` (resumable)."""

    out: dict[str, dict[str, float]] = {}
    for cond in conditions:
        res = evaluate(policy, rows, ecfg, None if out_dir is None else Path(out_dir) / cond, condition=cond,
                       judge=judge)
        for task, m in res.metrics.items():
            if task != "overall":
                out.setdefault(task, {})["score" if cond == "video" else cond] = task_score(task, m)
                if cond == "video":
                    out[task]["format_rate"] = float(m["format_rate"])
    return out


__all__ = ["CONDITIONS", "NO_INFO_CONDITIONS", "EvalConfig", "EvalResult", "Prompt", "accuracy_hook", "evaluate",
           "generate_answers", "load_result", "policy_dir", "policy_pair", "prepare_prompt", "sample_and_score",
           "summarize", "task_score", "task_scores"]
