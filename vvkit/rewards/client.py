"""A judge behind any OpenAI-compatible chat endpoint (`POST <base_url>/chat/completions`): vLLM, SGLang, TGI, a
hosted API. Same interface and scales as `judges.OfflineJudge`; the prompts restate the paper's rubrics (§1, §2)
and DREAM-1K's AutoDQ steps in our own words.

What the authors' judge services lack and this adds (the authors' judge calls are single, uncached and unretried): batched, concurrent
requests (thread pool), an on-disk cache keyed by the request's hash (sqlite, one transaction per reply), timeouts
and bounded retries with exponential backoff, replies parsed strictly (a last line `SCORE: n`, or a JSON object),
and failures that raise (`on_error="raise"`) or are counted and returned as None (`on_error="count"`), never 0.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ON_ERROR = ("raise", "count")
MEMORY_ITEMS = 100_000  # replies kept in memory per judge (the sqlite cache has no limit)
LABELS = ("entailment", "neutral", "contradiction")

SYSTEM = "You are a careful, strict grader of answers about videos. Follow the requested output format exactly."
DARK_EVENT_PROMPT = """A video had one event hidden behind a black screen; someone watched the rest and guessed
the hidden event.

Question: {question}
Hidden event (reference): {reference}
Guess to grade: {prediction}

Grade the guess against the reference:
2 = the guess states the whole reference event (extra detail is fine when it does not contradict it);
1 = the guess states part of the reference event and nothing that contradicts it;
0 = the guess describes another event, contradicts the reference, hedges between alternatives, or is empty.
Give one or two sentences of reasoning, then end with a last line of exactly the form `SCORE: <0, 1 or 2>`."""
MIXVID_PROMPT = """A question was asked about one of two clips interleaved in a video.

Question: {question}
Reference answer: {reference}
Answer to grade: {prediction}

Is the answer to grade correct, i.e. does it say the same as the reference answer for this question? Count it as
wrong when it is ambiguous, lists several alternatives, or when the reference itself is unclear.
Give one or two sentences of reasoning, then end with a last line of exactly the form `SCORE: <1 if correct, 0 if not>`."""
EVENTS_PROMPT = """Caption of a video:
{caption}

Break the caption into its key events: at most {max_events} short sentences of at most 10 words, one action each,
in the order they happen, with pronouns replaced by the thing they refer to. Leave out static description
(looks, setting, atmosphere), scene cuts and camera motion.
Reply with JSON only, of the form {{"events": ["...", "..."]}}."""
ENTAIL_PROMPT = """Caption of a video:
{caption}

Events:
{events}

For each event decide whether the caption entails it (the caption says it happens), contradicts it, or neither.
Reply with JSON only, of the form {{"labels": [...]}}, with exactly {n} labels in the events' order, each one of
"entailment", "neutral", "contradiction"."""

_SCORE = re.compile(r"SCORE:\s*(\d+)")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


class JudgeError(RuntimeError):
    """The judge endpoint could not be reached or gave a reply outside the required format."""


class ParseError(ValueError):
    """A reply that does not follow the format its prompt asks for."""


def parse_score(reply: str, allowed: Sequence[int]) -> int:
    """The integer of the reply's last non-empty line, which must read exactly `SCORE: n` with n allowed."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    m = _SCORE.fullmatch(lines[-1]) if lines else None
    if m is None or int(m.group(1)) not in allowed:
        tail = lines[-1][:80] if lines else ""
        raise ParseError(f"reply must end with a line `SCORE: n`, n in {list(allowed)}; its last line is {tail!r}")
    return int(m.group(1))


def _json_reply(reply: str, key: str) -> list:
    try:
        obj = json.loads(_FENCE.sub("", reply.strip()))
    except json.JSONDecodeError as e:
        raise ParseError(f"reply is not JSON ({e.msg}): {reply[:80]!r}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get(key), list) or not all(isinstance(x, str) for x in obj[key]):
        raise ParseError(f"reply must be a JSON object with a list of strings under {key!r}: {reply[:80]!r}")
    return obj[key]


def parse_events(reply: str, max_events: int = 10) -> list[str]:
    """Events from `{"events": [...]}`, blanks dropped, at most `max_events`."""
    return [e.strip() for e in _json_reply(reply, "events") if e.strip()][:max_events]


def parse_labels(reply: str, n: int) -> list[str]:
    """Exactly n labels from `{"labels": [...]}`, each entailment / neutral / contradiction."""
    labels = [x.strip().lower() for x in _json_reply(reply, "labels")]
    if len(labels) != n or any(x not in LABELS for x in labels):
        raise ParseError(f"expected {n} labels among {LABELS}, got {labels[:12]}")
    return labels


class DiskCache:
    """Replies by request hash in one sqlite file; each put is its own transaction, so a crash loses nothing
    already written and never leaves half a row."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT, created REAL)")

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, reply: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, reply, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


@dataclass
class HTTPJudge:
    """LLM judge over an OpenAI-compatible endpoint; `base_url` like `http://localhost:8000/v1`."""

    base_url: str
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key; the key is never stored
    cache_path: str | None = None  # sqlite file of replies; None = cache in memory only
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    concurrency: int = 8
    on_error: str = "raise"
    max_tokens: int = 512
    temperature: float = 0.0
    max_events: int = 10
    errors: dict = field(default_factory=dict)  # failures by kind since the last pop_errors()
    stats: dict = field(default_factory=lambda: {"requests": 0, "cache_hits": 0, "retries": 0})

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error {self.on_error!r} unknown; choose one of {ON_ERROR}")
        if self.api_key_env and self.api_key_env not in os.environ:
            raise JudgeError(f"judge_api_key_env names ${self.api_key_env}, which is not set; export it or set "
                             "judge_api_key_env to null for an endpoint without a key")
        self._memory: dict[str, str] = {}
        self._disk = DiskCache(self.cache_path) if self.cache_path else None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # pickles as settings; the worker reopens the cache file
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    # ---- plumbing ----

    def pop_errors(self) -> dict:
        """Failures by kind since the last call (rewards log them per step); resets the counter."""
        with self._lock:
            out, self.errors = dict(self.errors), {}
        return out

    def _key(self, payload: dict) -> str:
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _payload(self, user: str) -> dict:
        return {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]}

    def _post(self, payload: dict) -> str:
        url = self.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
            try:
                with self._lock:
                    self.stats["requests"] += 1
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    body = json.loads(resp.read().decode())
                return body["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code != 429 and e.code < 500:
                    break  # a client error will not heal by retrying
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (ValueError, KeyError, IndexError, TypeError) as e:
                last = f"malformed response body ({type(e).__name__})"
                break
        raise JudgeError(f"{url}: no reply after {attempt + 1} attempt(s) ({last}); check that the server runs, "
                         "judge_base_url / judge_model, or raise judge_timeout_s")

    def _one(self, user: str, parse: Callable[[str], Any]) -> Any:
        payload = self._payload(user)
        key = self._key(payload)
        cached = self._memory.get(key) or (self._disk.get(key) if self._disk is not None else None)
        if cached is not None:
            with self._lock:
                self.stats["cache_hits"] += 1
            return parse(cached)
        reply = self._post(payload)
        try:
            value = parse(reply)
        except ParseError as e:
            raise ParseError(f"{self.model} at {self.base_url}: {e}") from None
        self._memory[key] = reply  # only replies that parsed are cached: a fixed prompt or model re-asks
        if len(self._memory) > MEMORY_ITEMS:
            self._memory.pop(next(iter(self._memory)), None)  # oldest first; the disk cache keeps everything
        if self._disk is not None:
            self._disk.put(key, reply)
        return value

    def ask(self, users: Sequence[str], parse: Callable[[str], Any] | Sequence[Callable[[str], Any]]) -> list[Any]:
        """Parsed replies to many prompts (one parser, or one per prompt): duplicates asked once, the rest
        concurrently; a failure raises (`on_error="raise"`) or is counted and returned as None."""
        parsers = dict(zip(users, parse)) if isinstance(parse, (list, tuple)) else {u: parse for u in users}
        unique = list(parsers)
        results: dict[str, Any] = {}
        failures: list[Exception] = []

        def run(u: str) -> None:
            try:
                results[u] = self._one(u, parsers[u])
            except (JudgeError, ParseError) as e:
                results[u] = None
                kind = "unparseable" if isinstance(e, ParseError) else "unreachable"
                with self._lock:
                    failures.append(e)
                    self.errors[kind] = self.errors.get(kind, 0) + 1

        if len(unique) == 1:
            run(unique[0])
        elif unique:
            with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(unique)))) as pool:
                list(pool.map(run, unique))
        if failures and self.on_error == "raise":
            raise JudgeError(f"{len(failures)} of {len(unique)} judge request(s) failed; first: {failures[0]} "
                             "(judge_on_error='count' skips such items and counts them instead)")
        return [results[u] for u in users]

    # ---- the judge interface ----

    def score_dark_event(self, preds: Sequence[str | None], refs: Sequence[str],
                         questions: Sequence[str | None] | None = None) -> list[int | None]:
        """0/1/2 per guess from the DarkEventInfer rubric (paper §1); an empty guess is 0 without a request."""
        qs = list(questions) if questions is not None else [None] * len(preds)
        return self._graded(DARK_EVENT_PROMPT, (0, 1, 2), preds, refs, qs)

    def score_mixvid(self, preds: Sequence[str | None], refs: Sequence[str],
                     questions: Sequence[str | None] | None = None) -> list[int | None]:
        """1/0 per answer from the MixVidQA true/false rubric (paper §2)."""
        qs = list(questions) if questions is not None else [None] * len(preds)
        return self._graded(MIXVID_PROMPT, (0, 1), preds, refs, qs)

    def _graded(self, template: str, allowed: tuple[int, ...], preds, refs, qs) -> list[int | None]:
        live = [i for i, p in enumerate(preds) if p and p.strip()]
        users = [template.format(question=qs[i] or "(not given)", reference=refs[i], prediction=preds[i]) for i in live]
        scores: list[int | None] = [0] * len(preds)
        for i, s in zip(live, self.ask(users, lambda r: parse_score(r, allowed))):
            scores[i] = s
        return scores

    def autodq(self, preds: Sequence[str | None], refs: Sequence[str],
               ref_events: Sequence[Sequence[str] | None] | None = None) -> list[dict | None]:
        """DREAM-1K AutoDQ: the judge extracts events from both captions, then labels each against the other caption;
        recall / precision count "entailment" only. With `ref_events` for a caption (DREAM-1K's annotated events)
        those are the events recall is over and the reference is not re-extracted, as in Tarsier's AutoDQ; precision
        still checks the predicted events against the reference description. An item with any failed request is
        None."""
        annotated = [[e.strip() for e in a if e and e.strip()] or None if a else None
                     for a in (ref_events if ref_events is not None else [None] * len(preds))]
        need = [r for r, a in zip(refs, annotated) if a is None] + list(preds)
        texts = list(dict.fromkeys(t for t in need if t and t.strip()))
        extracted = dict(zip(texts, self.ask([EVENTS_PROMPT.format(caption=t, max_events=self.max_events) for t in texts],
                                             lambda r: parse_events(r, self.max_events))))

        def ref_ev(r: str, a: list[str] | None) -> list[str] | None:
            return a if a is not None else (extracted.get(r) if r and r.strip() else [])

        jobs: list[tuple[str, list[str]]] = []  # (caption, events to check against it)
        for p, r, a in zip(preds, refs, annotated):
            ev_r, ev_p = ref_ev(r, a), extracted.get(p) if p and p.strip() else []
            if ev_r and ev_p:
                jobs += [(p, ev_r), (r, ev_p)]
        prompts = [ENTAIL_PROMPT.format(caption=c, events="\n".join(f"{k + 1}. {e}" for k, e in enumerate(es)), n=len(es))
                   for c, es in jobs]
        labels = self.ask(prompts, [functools.partial(parse_labels, n=len(es)) for _, es in jobs])
        got = {(c, tuple(es)): lab for (c, es), lab in zip(jobs, labels)}
        out: list[dict | None] = []
        for p, r, a in zip(preds, refs, annotated):
            ev_r = ref_ev(r, a)
            ev_p = extracted.get(p) if p and p.strip() else []
            if ev_r is None or ev_p is None:
                out.append(None)
                continue
            info = {"ref_events": ev_r, "pred_events": ev_p, "annotated_events": a is not None}
            if not ev_r or not ev_p:
                out.append({"recall": 0.0, "precision": 0.0, "f1": 0.0, **info})
                continue
            lab_r, lab_p = got[(p, tuple(ev_r))], got[(r, tuple(ev_p))]
            if lab_r is None or lab_p is None:
                out.append(None)
                continue
            recall = sum(x == "entailment" for x in lab_r) / len(ev_r)
            precision = sum(x == "entailment" for x in lab_p) / len(ev_p)
            f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
            out.append({"recall": recall, "precision": precision, "f1": f1, **info})
        return out
