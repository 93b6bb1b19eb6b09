"""Offline judges: sentence-embedding stand-ins, on the same output scales, for the LLM judges the paper calls
(Qwen2.5-72B for DarkEventInfer 0/1/2 and MixVidQA true/false, GPT-3.5 for DREAM-1K AutoDQ; paper §1, §2, §4).

Answers are split into events (`events.split_events`) and compared by cosine of their embeddings
(`embedder.Embedder`, all-MiniLM-L6-v2). Similarity says two texts are *about* the same thing, not that they
*agree*: "moves left" and "moves right" score 0.99. A small exclusive-word lexicon (colours, shapes, opposite
directions and changes) catches the toy world's commonest contradictions; an LLM judge catches contradictions in
general and reads the question, which these judges ignore.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vvkit.rewards.embedder import Embedder, get_embedder
from vvkit.rewards.events import is_question, n_words, split_events
from vvkit.rewards.lexicon import contradicts, covers, facts, merge, only_who, overlaps

TOYWORLD = "toyworld"  # the `source` of rows rendered by vvkit.synth.toyworld, the world these judges are made for


@dataclass
class OfflineJudge:
    """Embedding judge with the LLM judges' interface and output scales (thresholds from `calibration.py`).

    An answer is split into events (`split_events`); events restating the question (cosine >= `copy_threshold`)
    or asking one back are ignored, and `lexicon.contradicts` flags events at odds with the reference.
    dark_event: 2 when the best event's cosine with the reference is >= `dark_full` and the events state every
    reference fact (`lexicon.covers`), 1 when it is >= `dark_partial`, else 0; and 0 whenever some event
    contradicts (the rubric: 1 is "partially, without errors"), so hedging between alternatives earns nothing.
    mixvid: 1 when the cosine is >= `mixvid_threshold`, the facts are covered and no event contradicts.
    AutoDQ: `split_events` plays the LLM's event extraction, and event a is "entailed" by event b when their cosine
    is >= `entail_threshold`, b does not contradict a and b states a's facts.
    Texts the lexicon reads completely (toy-world vocabulary only) are judged by it alone, without embeddings
    (`lexicon_decides`); with `lexicon=False` only cosines decide (then calibrate() suggests about 0.82 / 0.38 /
    0.84). An LLM judge reads meaning and the question, resolves pronouns and checks each event against the whole
    other caption.

    Made for the toy world only: on free text it reads neither negation nor meaning ("the person does not season the
    fish" earns 2 of 2 against "the person seasons the fish"). It warns once, with a count, when asked to score rows
    whose `source` is not "toyworld" (`note_sources`; the rewards and `score_rows` pass the rows' sources); judge real
    benchmarks (DREAM-1K, free-form answers) with an LLM judge (`client.HTTPJudge`).
    """

    dark_full: float = 0.6
    dark_partial: float = 0.4
    mixvid_threshold: float = 0.5
    entail_threshold: float = 0.5
    copy_threshold: float = 0.9
    max_events: int = 10
    lexicon: bool = True
    lexicon_decides: bool = True  # texts the lexicon reads completely skip the embedding model
    model_path: str | None = None
    errors: dict = field(default_factory=dict)  # always empty offline: the interface of HTTPJudge, which can fail
    foreign_rows: int = 0  # rows scored whose source is not the toy world (see `note_sources`)
    _warned: bool = field(default=False, repr=False)

    @property
    def embedder(self) -> Embedder:
        return get_embedder(self.model_path)

    def note_sources(self, sources: Sequence[str | None]) -> int:
        """Count the rows about to be scored whose `source` is known and not "toyworld"; the first time there are
        any, warn loudly with their count (once per judge; `foreign_rows` keeps counting). Returns the new count."""
        n = sum(1 for src in sources if src is not None and src != TOYWORLD)
        self.foreign_rows += n
        if n and not self._warned:
            self._warned = True
            shown = sorted({str(src) or "''" for src in sources if src is not None and src != TOYWORLD})[:3]
            warnings.warn(
                f"OfflineJudge is scoring {n} row(s) that are not toy-world rows (source {', '.join(shown)}): its "
                "embedding + toy-lexicon verdicts ignore negation and meaning on free text, so these scores are not "
                "comparable with an LLM judge's. Use judge='http' (an OpenAI-compatible judge) for such rows. "
                "This warning is shown once per judge; `judge.foreign_rows` keeps the count.",
                UserWarning, stacklevel=3)
        return self.foreign_rows

    def pop_errors(self) -> dict:
        """Judge failures since the last call (none offline); the rewards log them per step."""
        out, self.errors = dict(self.errors), {}
        return out

    @staticmethod
    def _decidable(events: Sequence[str], ref: str) -> bool:
        return not facts(ref).unknown and all(not facts(e).unknown for e in events)

    @staticmethod
    def _lexical(ref: str) -> bool:
        f = facts(ref)
        return n_words(ref) <= 2 and bool(f.colours | f.shapes | f.directions | f.numbers | f.actions)

    def match(self, preds: Sequence[str | None], refs: Sequence[str], questions: Sequence[str | None] | None = None,
              need_partial: bool = True) -> list[tuple[float, bool, bool]]:
        """Per answer: (best cosine of an answer event with the reference, whether some event contradicts it, whether
        the events state every reference fact the question did not give). Questions asked back and restated prompts
        are ignored. The lexicon runs first: an answer it rejects (graders give 0 whenever an event contradicts), or
        one it reads completely together with its reference (then "similarity" is 1.0 when the answer states a fact
        of the reference, else 0.0), never reaches the embedding model."""
        questions = list(questions) if questions is not None else [None] * len(preds)
        events = [[e for e in (split_events(p, self.max_events) or [p.strip()]) if not is_question(e)]
                  if p and p.strip() else [] for p in preds]
        out: list[tuple[float, bool, bool] | None] = [None] * len(preds)
        todo = []
        for i, es in enumerate(events):
            if not es:
                out[i] = (0.0, False, False)
            elif self.lexicon and any(contradicts(e, refs[i], questions[i]) for e in es):
                out[i] = (0.0, True, False)
            elif self.lexicon and self.lexicon_decides and self._decidable(es, refs[i]):
                got = merge([facts(e) for e in es])  # both texts parsed completely: the lexicon decides
                full = covers(got, refs[i], questions[i])
                out[i] = (1.0 if full or overlaps(got, refs[i]) else 0.0, False, full)
            elif (self.lexicon and self.lexicon_decides and self._lexical(refs[i])
                  and covers(merge([facts(e) for e in es]), refs[i], questions[i])):
                out[i] = (1.0, False, True)  # "it goes left, obviously" vs "left": nothing for an embedding to add
            else:
                todo.append(i)
        if todo:
            qs = sorted({questions[i] for i in todo if questions[i]})
            flat = [e for i in todo for e in events[i]]
            emb = self.embedder.encode([refs[i] for i in todo] + qs + flat)
            ref_e, q_e, ev_e = emb[: len(todo)], emb[len(todo) : len(todo) + len(qs)], emb[len(todo) + len(qs) :]
            q_index = {q: j for j, q in enumerate(qs)}
            k = 0
            for t, i in enumerate(todo):
                vecs, q = ev_e[k : k + len(events[i])], questions[i]
                k += len(events[i])
                keep = [j for j, v in enumerate(vecs) if not (q and float(v @ q_e[q_index[q]]) >= self.copy_threshold)]
                best = max((float(vecs[j] @ ref_e[t]) for j in keep), default=0.0)
                full = bool(keep) and (not self.lexicon or covers(merge([facts(events[i][j]) for j in keep]), refs[i], q))
                out[i] = (best, False, full)
        return out  # type: ignore[return-value]

    def score_dark_event(self, preds: Sequence[str | None], refs: Sequence[str],
                         questions: Sequence[str] | None = None) -> list[int | None]:
        """0/1/2 per answer: different, wrong or hedged / partly covers the hidden event without error / covers it
        (paper §1; an LLM judge may forgive a correct answer wrapped in context sentences, this one cannot tell)."""
        out: list[int | None] = []
        for (best, bad, full), pred, ref in zip(self.match(preds, refs, questions), preds, refs):
            score = 2 if (best >= self.dark_full and full) else int(best >= self.dark_partial)
            # naming only the shape, visible before and after the dark span, is no answer about the event in it
            who = bool(self.lexicon and pred and only_who(merge([facts(e) for e in split_events(pred, self.max_events)
                                                                   or [pred]]), ref))
            out.append(0 if bad or who else score)
        return out

    def score_mixvid(self, preds: Sequence[str | None], refs: Sequence[str],
                     questions: Sequence[str] | None = None) -> list[int | None]:
        """1 if the answer matches the reference answer and asserts nothing against it, else 0 (paper §2)."""
        return [int(best >= self.mixvid_threshold and full and not bad)
                for best, bad, full in self.match(preds, refs, questions, need_partial=False)]

    def autodq(self, preds: Sequence[str | None], refs: Sequence[str],
               ref_events: Sequence[Sequence[str] | None] | None = None) -> list[dict | None]:
        """DREAM-1K AutoDQ per caption: recall (reference events covered by the prediction), precision (predicted
        events supported by the reference description), F1. With `ref_events` for a caption (DREAM-1K's annotated
        events), recall is over those events, as in Tarsier's AutoDQ; precision stays against the description's
        events. Without them, both come from `split_events` of the description."""
        annotated = list(ref_events) if ref_events is not None else [None] * len(preds)
        ev_p = [split_events(p, self.max_events) for p in preds]
        ev_d = [split_events(r, self.max_events) for r in refs]  # the description's events (precision)
        ev_r = [[e for e in a if e and e.strip()] if a else d for a, d in zip(annotated, ev_d)]  # recall's events
        lexical = [self.lexicon and self.lexicon_decides and self._decidable(ev_r[i] + ev_d[i] + ev_p[i], "")
                   for i in range(len(preds))]
        need = [i for i, lex in enumerate(lexical) if not lex]
        emb = self.embedder.encode([e for i in need for e in ev_r[i] + ev_d[i] + ev_p[i]])
        mats: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        k = 0
        for i in need:
            nr, nd, npred = len(ev_r[i]), len(ev_d[i]), len(ev_p[i])
            mats[i] = (emb[k : k + nr], emb[k + nr : k + nr + nd], emb[k + nr + nd : k + nr + nd + npred])
            k += nr + nd + npred
        out = []
        for i in range(len(preds)):
            er, ed, ep = mats.get(i, (None, None, None))
            if not ev_r[i] or not ev_p[i]:
                dq = {"recall": 0.0, "precision": 0.0, "f1": 0.0}
            else:
                recall = float(self._support(ev_r[i], ev_p[i], er, ep)[0].mean())
                precision = (float(self._support(ev_d[i], ev_p[i], ed, ep)[1].mean()) if ev_d[i] else 0.0)
                f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
                dq = {"recall": recall, "precision": precision, "f1": f1}
            out.append({**dq, "ref_events": ev_r[i], "pred_events": ev_p[i],
                        "annotated_events": bool(annotated[i])})
        return out

    def _support(self, ev_r: list[str], ev_p: list[str], er: np.ndarray | None,
                 ep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(R,) whether each reference event is entailed by some predicted event, and (P,) whether each predicted
        event is entailed by some reference event."""
        if er is None or ep is None:  # every event parsed by the lexicon: it alone decides, on events sharing a fact
            near = np.array([[overlaps(facts(p), r) for p in ev_p] for r in ev_r], dtype=bool)
        else:
            near = (er @ ep.T) >= self.entail_threshold  # (R, P) reference event i vs predicted event j
        by_pred, by_ref = near.copy(), near.copy()  # i entailed by j (recall) / j entailed by i (precision)
        if self.lexicon:
            for i, j in zip(*np.nonzero(near)):
                if contradicts(ev_p[j], ev_r[i]):
                    by_pred[i, j] = by_ref[i, j] = False
                    continue
                by_pred[i, j] = covers(facts(ev_p[j]), ev_r[i])
                by_ref[i, j] = covers(facts(ev_r[i]), ev_p[j])
        return by_pred.any(1), by_ref.any(0)


JUDGE_KINDS = ("offline", "http", "tasks")


class TaskJudges:
    """Two judges by task: `qa` for DarkEventInfer, MixVidQA and judged open-ended answers, `caption` for AutoDQ, as
    in the paper (§4: Qwen2.5-72B-Instruct judges the proxy tasks, GPT-3.5 extracts and matches caption events)."""

    def __init__(self, qa: Any, caption: Any) -> None:
        self.qa, self.caption = resolve_judge(qa), resolve_judge(caption)

    def score_dark_event(self, *args: Any, **kw: Any) -> list:
        return self.qa.score_dark_event(*args, **kw)

    def score_mixvid(self, *args: Any, **kw: Any) -> list:
        return self.qa.score_mixvid(*args, **kw)

    def autodq(self, preds: Sequence[str | None], refs: Sequence[str], ref_events: Any = None) -> list:
        return (self.caption.autodq(preds, refs) if ref_events is None
                else self.caption.autodq(preds, refs, ref_events=ref_events))

    def note_sources(self, sources: Sequence[str | None]) -> None:
        for judge in {id(j): j for j in (self.qa, self.caption)}.values():
            if callable(getattr(judge, "note_sources", None)):
                judge.note_sources(sources)

    def pop_errors(self) -> dict:
        out: dict = {}
        for judge in {id(j): j for j in (self.qa, self.caption)}.values():
            for kind, n in (judge.pop_errors() if callable(getattr(judge, "pop_errors", None)) else {}).items():
                out[kind] = out.get(kind, 0) + n
        return out

    def __getattr__(self, name: str) -> Any:  # calibration helpers (match, embedder) come from the QA judge
        if name in ("qa", "caption"):
            raise AttributeError(name)
        return getattr(self.qa, name)


@dataclass(frozen=True)
class JudgeSpec:
    """A judge by its settings (hashable, tiny to pickle); `resolve_judge` builds it once per process."""

    kind: str = "offline"
    settings: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, kind: str = "offline", **settings: Any) -> "JudgeSpec":
        if kind not in JUDGE_KINDS:
            raise ValueError(f"judge {kind!r} unknown; choose one of {JUDGE_KINDS}")
        return cls(kind, tuple(sorted(settings.items())))


def _new_judge(kind: str = "offline", **settings: Any) -> Any:
    """A new judge: `offline` (`OfflineJudge` fields), `http` (`client.HTTPJudge` fields) or `tasks` (`TaskJudges`)."""
    if kind == "offline":
        return OfflineJudge(**settings)
    if kind == "http":
        from vvkit.rewards.client import HTTPJudge

        return HTTPJudge(**settings)
    if kind == "tasks":
        return TaskJudges(**settings)
    raise ValueError(f"judge {kind!r} unknown; choose one of {JUDGE_KINDS}")


_JUDGES: dict[JudgeSpec, Any] = {}


def resolve_judge(judge: Any = None) -> Any:
    """The judge object for a reward's `judge=` setting: an object as is; None, "offline", "http" or a JudgeSpec
    built once per process and shared (so caches and error counters are shared too)."""
    if judge is None or isinstance(judge, str):
        judge = JudgeSpec.make(judge or "offline")
    if isinstance(judge, JudgeSpec):
        if judge not in _JUDGES:
            _JUDGES[judge] = _new_judge(judge.kind, **dict(judge.settings))
        return _JUDGES[judge]
    for method in ("score_dark_event", "score_mixvid", "autodq"):
        if not callable(getattr(judge, method, None)):
            raise TypeError(f"judge {type(judge).__name__} lacks `{method}`; pass an OfflineJudge, HTTPJudge or JudgeSpec")
    return judge
