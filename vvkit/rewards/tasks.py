"""Task rewards that route on `problem_type` and may call a judge: the paper's gated `accuracy` reward (§4), one
reward per task, Video-R1's length-control bonus, and `score_batch`, which `vvkit.rewards.scorer` wraps for evaluation (same parser, same judges).

A judge is anything with `score_dark_event`, `score_mixvid` and `autodq` (`judges.OfflineJudge`, `client.HTTPJudge`);
rewards take it as `judge=` (an object, "offline", "http" or a `JudgeSpec`; None = the shared offline judge).
A judge that fails under `on_error="count"` yields None for that item: TRL then leaves the item out of that
reward instead of reading a silent 0.
"""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np

from vvkit.rewards.embedder import get_embedder
from vvkit.rewards.judges import resolve_judge
from vvkit.rewards.parsing import extract_choice, free_answer, gt_letter, mcq_choice, parse_completion, solution_text
from vvkit.rewards.rule import column, keyword_score, mcq_score, rouge_score, task_types, texts_of

GATES = ("multiply", "add", "none")
READINGS = ("tagged", "any")  # how an answer is read: the reward's <answer> block, or any output (evaluation)
OPEN_ENDED_METRICS = ("rouge_mean", "rouge_l", "embedding", "judge")
TASK_MAX = {"mcq": 1.0, "dark_event": 2.0, "mixvid": 1.0, "open_ended": 1.0}  # caption: 1 + alpha (+ keywords)


def score_batch(texts: Sequence[str], solutions: Sequence[Any], types: Sequence[str | None],
                options: Sequence[Any], problems: Sequence[Any], judge: Any = None, *, strict_format: bool = True,
                open_ended_metric: str = "rouge_mean", caption_alpha: float = 0.5, caption_keywords: bool = True,
                only: Sequence[str] | None = None, skip_malformed: bool = False, reading: str = "tagged",
                sources: Sequence[str | None] | None = None,
                ref_events: Sequence[Sequence[str] | None] | None = None) -> list[dict | None]:
    """Per completion: {task, format, answer, score (ungated; None when the judge failed), ...task details}.

    Rows whose task is not in `only` get None. With `skip_malformed`, ill-formed completions score 0 without a
    judge call (the multiplicative gate would zero them anyway); an empty answer scores 0 without a judge call.
    `reading="tagged"` (the rewards) reads the <answer> block only; `reading="any"` (evaluation, every policy,
    base models included) reads any output: `parsing.mcq_choice` for the letter, `parsing.free_answer` for text;
    `format` stays the strict verdict either way. `sources` (the rows' `source`) lets a judge warn about rows it was
    not made for; `ref_events` (DREAM-1K's annotated events, per caption row) feed AutoDQ's recall.
    """
    if open_ended_metric not in OPEN_ENDED_METRICS:
        raise ValueError(f"open_ended_metric {open_ended_metric!r} unknown; choose one of {OPEN_ENDED_METRICS}")
    if reading not in READINGS:
        raise ValueError(f"reading {reading!r} unknown; choose one of {READINGS}")
    out: list[dict | None] = [None] * len(texts)
    pending: dict[str, list[int]] = {"dark_event": [], "mixvid": [], "caption": [], "open_ended": []}
    for i, (text, task) in enumerate(zip(texts, types)):
        if task is None:
            raise ValueError("task rewards need the `problem_type` column (one of vvkit.schema.TASKS) per row")
        if only is not None and task not in only:
            continue
        parsed = parse_completion(text, strict_format)
        answer = parsed.answer if reading == "tagged" else free_answer(text)
        rec = {"task": task, "format": float(parsed.well_formed), "answer": answer}
        out[i] = rec
        if task == "mcq":
            rec["choice"] = (extract_choice(parsed.answer, options[i]) if reading == "tagged"
                             else mcq_choice(text, options[i]))
            rec["score"] = 1.0 if rec["choice"] == gt_letter(solutions[i]) else 0.0
        elif not answer or (skip_malformed and not parsed.well_formed):
            rec["score"] = 0.0
            if task == "caption":
                rec.update(recall=0.0, precision=0.0, f1=0.0, keywords=0.0)
        else:
            pending[task].append(i)
    if any(pending.values()):
        judge = resolve_judge(judge)
        note = getattr(judge, "note_sources", None)
        if sources is not None and callable(note):
            note([sources[i] for idx in pending.values() for i in idx])
        _judge_pending(out, pending, solutions, problems, judge, open_ended_metric, caption_alpha, caption_keywords,
                       ref_events)
    for rec in out:
        if rec is not None:
            rec["correct"] = _correct(rec)
    return out


def _judge_pending(out: list, pending: dict, solutions: Sequence[Any], problems: Sequence[Any], judge: Any,
                   open_ended_metric: str, caption_alpha: float, caption_keywords: bool,
                   ref_events: Sequence[Any] | None = None) -> None:
    """Batched judge calls: one per task for the whole batch."""
    def args(idx: list[int]) -> tuple[list[str], list[str], list[str | None]]:
        return ([out[i]["answer"] for i in idx], [solution_text(solutions[i]) for i in idx],
                [problems[i] for i in idx])

    if pending["dark_event"]:
        for i, s in zip(pending["dark_event"], judge.score_dark_event(*args(pending["dark_event"]))):
            out[i]["score"] = None if s is None else float(s)
    mix = pending["mixvid"] + (pending["open_ended"] if open_ended_metric == "judge" else [])
    if mix:
        for i, s in zip(mix, judge.score_mixvid(*args(mix))):
            out[i]["score"] = None if s is None else float(s)
    if pending["open_ended"] and open_ended_metric != "judge":
        preds, refs, _ = args(pending["open_ended"])
        if open_ended_metric == "embedding":
            emb = get_embedder().encode(preds + refs)
            sims = np.clip((emb[: len(preds)] * emb[len(preds) :]).sum(1), 0.0, 1.0)  # (N,) cosine
        else:
            variant = "mean" if open_ended_metric == "rouge_mean" else "rougeL"
            sims = [rouge_score(p, r, variant) for p, r in zip(preds, refs)]
        for i, s in zip(pending["open_ended"], sims):
            out[i]["score"] = float(s)
    if pending["caption"]:
        preds, refs, _ = args(pending["caption"])
        events = [_events(ref_events[i]) for i in pending["caption"]] if ref_events is not None else None
        if events is not None and any(e is not None for e in events):
            if "ref_events" not in inspect.signature(judge.autodq).parameters:
                raise TypeError(f"judge {type(judge).__name__}.autodq takes no `ref_events`, but these caption rows "
                                "carry annotated events (DREAM-1K); add a `ref_events=None` parameter to it "
                                "(recall over those events) or drop `ref_events`")
            dqs = judge.autodq(preds, refs, ref_events=events)
        else:
            dqs = judge.autodq(preds, refs)
        for i, dq in zip(pending["caption"], dqs):
            rec = out[i]
            if dq is None:
                rec["score"] = None
                continue
            kw = keyword_score(rec["answer"]) if caption_keywords else 0.0
            rec.update(recall=dq["recall"], precision=dq["precision"], f1=dq["f1"], keywords=kw)
            rec["score"] = dq["recall"] + caption_alpha * dq["precision"] + kw  # paper §4: R + 0.5 P + keywords


def _events(value: Any) -> list[str] | None:
    """A row's annotated reference events, or None when it has none (then AutoDQ extracts them)."""
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(e, str) for e in value):
        raise TypeError(f"ref_events must be a list of event sentences per row (or None), got {value!r}")
    events = [e.strip() for e in value if e.strip()]
    return events or None


def _correct(rec: dict) -> bool | None:
    """Evaluation's notion of a right answer: full marks; open-ended ROUGE/cosine >= 0.5; captions have none."""
    s, task = rec.get("score"), rec["task"]
    if s is None or task == "caption":
        return None
    return bool(s >= (0.5 if task == "open_ended" else TASK_MAX[task]))


def normalized(rec: dict, caption_alpha: float = 0.5) -> float | None:
    """Task score in [0, 1] (caption: (recall + alpha precision) / (1 + alpha), keywords left out)."""
    if rec.get("score") is None:
        return None
    if rec["task"] == "caption":
        return (rec["recall"] + caption_alpha * rec["precision"]) / (1 + caption_alpha)
    return rec["score"] / TASK_MAX[rec["task"]]


def gate(fmt: float, score: float | None, mode: str = "multiply") -> float | None:
    """Combine format and task score: paper's product (§4), Video-R1's sum, or the task score alone."""
    if mode not in GATES:
        raise ValueError(f"gate {mode!r} unknown; choose one of {GATES}")
    if mode == "multiply" and fmt == 0.0:
        return 0.0
    if score is None:
        return None
    return {"multiply": fmt * score, "add": fmt + score, "none": score}[mode]


_combine = gate  # for the functions below whose `gate` argument is the setting (the mode), not this function


def _batch(completions: Sequence[Any], kwargs: dict) -> tuple[list[str], list, list, list, list]:
    texts = texts_of(completions)
    n = len(texts)
    return (texts, column(kwargs, "solution", n), task_types(kwargs, n), column(kwargs, "options", n),
            column(kwargs, "problem", n))


def _sources(kwargs: dict, n: int) -> list | None:
    """The batch's `source` column (TRL passes every dataset column), or None when it has none."""
    values = column(kwargs, "source", n)
    return values if any(v is not None for v in values) else None


def accuracy_reward(completions: Sequence[Any], gate: str = "multiply", judge: Any = None, strict_format: bool = True,
                    open_ended_metric: str = "rouge_mean", caption_alpha: float = 0.5, caption_keywords: bool = True,
                    **kwargs: Any) -> list[float | None]:
    """The paper's single reward (§4): format x task score, the task routed by `problem_type` (mcq letter 0/1,
    dark_event judge 0/1/2, mixvid judge 0/1, open_ended ROUGE/judge, caption R + 0.5 P + keywords).

    vvkit differs: `gate="add"` gives Video-R1's format + accuracy; the open_ended task (absent from the paper)
    uses Video-R1's mean ROUGE-1/2/L by default.

    >>> accuracy_reward(["<think>blue</think><answer>B</answer>", "B"], solution=["B", "B"],
    ...                 problem_type=["mcq", "mcq"], options=[["A. red", "B. blue"]] * 2)
    [1.0, 0.0]
    """
    texts, sols, types, opts, probs = _batch(completions, kwargs)
    recs = score_batch(texts, sols, types, opts, probs, judge, strict_format=strict_format,
                       open_ended_metric=open_ended_metric, caption_alpha=caption_alpha,
                       caption_keywords=caption_keywords, skip_malformed=gate == "multiply",
                       sources=_sources(kwargs, len(texts)))
    return [_combine(r["format"], r["score"], gate) for r in recs]


def _task_reward(task: str, completions: Sequence[Any], kwargs: dict, **settings: Any) -> list[float | None]:
    texts, sols, types, opts, probs = _batch(completions, kwargs)
    recs = score_batch(texts, sols, types, opts, probs, only=(task,), sources=_sources(kwargs, len(texts)),
                       **settings)
    return [None if r is None else r["score"] for r in recs]


def dark_event_reward(completions: Sequence[Any], judge: Any = None, strict_format: bool = True,
                      **kwargs: Any) -> list[float | None]:
    """Judge grade 0/1/2 of the answer against the hidden event on dark_event rows, ungated (paper §1; the
    authors' judge reply is read by looking for "2" or "1" anywhere, ours must end with `SCORE: n`).

    >>> dark_event_reward(["<think>it left</think><answer>The red square slides to the left.</answer>"],
    ...                   solution=["The red square moves left."], problem_type=["dark_event"])
    [2.0]
    """
    return _task_reward("dark_event", completions, kwargs, judge=judge, strict_format=strict_format)


def mixvid_reward(completions: Sequence[Any], judge: Any = None, strict_format: bool = True,
                  **kwargs: Any) -> list[float | None]:
    """Judge verdict 1/0 on mixvid rows, ungated (paper §2; ours parses a fixed `SCORE: 1|0` line, not "True"
    anywhere in the reply).

    >>> mixvid_reward(["<think>x</think><answer>left</answer>", "<think>x</think><answer>right</answer>"],
    ...               solution=["left", "left"], problem_type=["mixvid", "mixvid"])
    [1.0, 0.0]
    """
    return _task_reward("mixvid", completions, kwargs, judge=judge, strict_format=strict_format)


def open_ended_reward(completions: Sequence[Any], open_ended_metric: str = "rouge_mean", judge: Any = None,
                      strict_format: bool = True, **kwargs: Any) -> list[float | None]:
    """Free-form answer score in [0, 1] on open_ended rows: Video-R1's mean ROUGE-1/2/L, ROUGE-L, embedding cosine,
    or the judge's true/false (the paper has no such task; its free-form MixVidQA uses the judge).

    >>> open_ended_reward(["<think>x</think><answer>red</answer>"], solution=["red"], problem_type=["open_ended"])
    [1.0]
    """
    return _task_reward("open_ended", completions, kwargs, judge=judge, strict_format=strict_format,
                        open_ended_metric=open_ended_metric)


def caption_reward(completions: Sequence[Any], judge: Any = None, strict_format: bool = True,
                   caption_alpha: float = 0.5, caption_keywords: bool = True, **kwargs: Any) -> list[float | None]:
    """AutoDQ recall + alpha x precision + keyword term on caption rows, ungated (paper §4, DREAM-1K; range
    [-0.2 x len(HEDGE_PHRASES), 1.9]; keywords matched as whole words, unlike the authors' substrings).

    >>> ref = "First, the red square moves left. Then, the blue circle grows."
    >>> caption_reward(["<think>x</think><answer>" + ref + "</answer>"], solution=[ref], problem_type=["caption"])
    [1.9]
    """
    return _task_reward("caption", completions, kwargs, judge=judge, strict_format=strict_format,
                        caption_alpha=caption_alpha, caption_keywords=caption_keywords)


def length_reward(completions: Sequence[Any], length_min: int = 320, length_max: int = 512, length_bonus: float = 0.2,
                  length_min_correct: int = 2, correct_threshold: float = 0.1, judge: Any = None,
                  strict_format: bool = True, completion_ids: Sequence[Sequence[int]] | None = None,
                  **kwargs: Any) -> list[float | None]:
    """`length_bonus` for a correct completion whose length lies in [length_min, length_max], when at least
    `length_min_correct` completions of its group (same `problem` and `solution`) are correct (Video-R1 length
    control: +0.2 for 320-512 tokens).

    Correct = gated normalized task score > `correct_threshold` (Video-R1: accuracy > 0.1). Length counts tokens
    from `completion_ids` (TRL passes them), else whitespace words. Video-R1 adds the bonus inside its accuracy
    reward and counts the per-device batch (one prompt) as the group; vvkit keeps it a separate reward.

    >>> done = "<think>" + "look " * 5 + "</think><answer>B</answer>"
    >>> length_reward([done, done], length_min=5, length_max=10, solution=["B", "B"], problem_type=["mcq", "mcq"],
    ...               options=[None, None])
    [0.2, 0.2]
    """
    texts, sols, types, opts, probs = _batch(completions, kwargs)
    recs = score_batch(texts, sols, types, opts, probs, judge, strict_format=strict_format, skip_malformed=True,
                       sources=_sources(kwargs, len(texts)))
    correct = [r["format"] > 0 and (normalized(r) or 0.0) > correct_threshold for r in recs]
    lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [len(t.split()) for t in texts]
    groups: dict[tuple, int] = {}
    for key, ok in zip(zip(probs, map(str, sols)), correct):
        groups[key] = groups.get(key, 0) + int(ok)
    return [
        length_bonus if ok and groups[key] >= length_min_correct and length_min <= n <= length_max else 0.0
        for key, ok, n in zip(zip(probs, map(str, sols)), correct, lengths)
    ]
