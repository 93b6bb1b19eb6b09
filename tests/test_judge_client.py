"""The HTTP judge against a small OpenAI-compatible server on 127.0.0.1: batching, concurrency, the disk cache,
timeouts, 500s, unparseable replies and an unreachable endpoint, each with its documented behaviour."""
import json
import pickle
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import vvkit.rewards as R
from vvkit.rewards.client import HTTPJudge, JudgeError, parse_events, parse_labels, parse_score


class FakeJudgeServer:
    """Grades by rules the tests know: a guess equal to the reference scores top marks; the guess's text selects
    failure modes: SLOW (sleeps past the timeout), BOOM (HTTP 500), GARBLE (reply without a SCORE line)."""

    def __init__(self):
        self.requests, self.active, self.max_active, self.auth = [], 0, 0, []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(user)
                    server.auth.append(self.headers.get("Authorization"))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    time.sleep(0.05)  # long enough for concurrent requests to overlap
                    if "BOOM" in user:
                        self.send_response(500)
                        self.end_headers()
                        return
                    if "SLOW" in user:
                        time.sleep(1.0)
                    reply = server.reply(user)
                    data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.active -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def reply(user: str) -> str:
        if "GARBLE" in user:
            return "I would give this a two."
        if "Break the caption into its key events" in user:
            caption = user.split("Caption of a video:\n", 1)[1].split("\n\nBreak", 1)[0]
            return json.dumps({"events": [s.strip() for s in caption.split(".") if s.strip()]})
        if "For each event decide" in user:
            caption = user.split("Caption of a video:\n", 1)[1].split("\n\nEvents:", 1)[0].lower()
            events = re.findall(r"^\d+\. (.*)$", user, re.M)
            return "```json\n" + json.dumps({"labels": ["entailment" if e.lower() in caption else "neutral"
                                                        for e in events]}) + "\n```"
        ref = re.search(r"(?:Hidden event \(reference\)|Reference answer): (.*)", user).group(1)
        guess = re.search(r"(?:Guess to grade|Answer to grade): (.*)", user).group(1)
        top = 2 if "Hidden event" in user else 1
        return f"The guess matches.\nSCORE: {top if guess == ref else 0}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = FakeJudgeServer()
    yield s
    s.close()


def make(server, tmp_path, **kw) -> HTTPJudge:
    kw = {"timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01, "concurrency": 4,
          "cache_path": str(tmp_path / "judge.sqlite"), **kw}
    return HTTPJudge(base_url=server.url, model="fake-judge", **kw)


def test_parsers_are_strict():
    assert parse_score("Reasoning here.\nSCORE: 2\n\n", (0, 1, 2)) == 2
    for bad in ["Score: 2", "SCORE: 2.", "I give it 2", "SCORE: 3", "SCORE: 2\nThanks!", ""]:
        with pytest.raises(ValueError):
            parse_score(bad, (0, 1, 2))
    assert parse_events('{"events": ["a moves", " ", "b grows"]}') == ["a moves", "b grows"]
    assert parse_labels('```json\n{"labels": ["Entailment", "neutral"]}\n```', 2) == ["entailment", "neutral"]
    with pytest.raises(ValueError):
        parse_labels('{"labels": ["entailment"]}', 2)
    with pytest.raises(ValueError):
        parse_events("events: a, b")


def test_batched_concurrent_and_cached(server, tmp_path):
    judge = make(server, tmp_path)
    refs = ["the red square moves left"] * 8
    preds = ["the red square moves left", "a", "b", "c", "d", "e", "a", "the red square moves left"]
    assert judge.score_dark_event(preds, refs) == [2, 0, 0, 0, 0, 0, 0, 2]
    assert len(server.requests) == 6  # duplicates asked once
    assert server.max_active >= 2  # requests overlapped
    assert judge.score_dark_event(preds, refs) == [2, 0, 0, 0, 0, 0, 0, 2]
    assert len(server.requests) == 6 and judge.stats["cache_hits"] == 6
    fresh = make(server, tmp_path)  # a new process would find the replies on disk
    assert fresh.score_dark_event(preds[:2], refs[:2]) == [2, 0]
    assert len(server.requests) == 6
    assert judge.score_dark_event(["", None], refs[:2]) == [0, 0]  # empty guesses never reach the judge
    assert len(server.requests) == 6


def test_timeout_is_retried_then_raises_or_counts(server, tmp_path):
    judge = make(server, tmp_path, timeout_s=0.3, max_retries=1)
    with pytest.raises(JudgeError, match="2 attempt"):
        judge.score_mixvid(["SLOW"], ["up"], ["Which way?"])
    assert len(server.requests) == 2
    counting = make(server, tmp_path, timeout_s=0.3, max_retries=0, on_error="count")
    assert counting.score_mixvid(["SLOW", "up"], ["up", "up"], ["q", "q"]) == [None, 1]
    assert counting.pop_errors() == {"unreachable": 1} and counting.pop_errors() == {}


def test_server_error_is_retried_then_reported(server, tmp_path):
    judge = make(server, tmp_path, max_retries=2)
    with pytest.raises(JudgeError, match="HTTP 500"):
        judge.score_dark_event(["BOOM"], ["x"])
    assert len(server.requests) == 3  # one try plus two retries
    assert judge.stats["retries"] == 2


def test_unparseable_reply_raises_or_counts_and_is_not_cached(server, tmp_path):
    with pytest.raises(JudgeError, match="SCORE"):
        make(server, tmp_path).score_dark_event(["GARBLE"], ["x"])
    judge = make(server, tmp_path, on_error="count")
    assert judge.score_dark_event(["GARBLE", "x"], ["x", "x"]) == [None, 2]
    assert judge.score_dark_event(["GARBLE"], ["x"]) == [None]
    assert server.requests.count(server.requests[0]) == 3  # asked again each time: bad replies are not cached
    assert judge.pop_errors() == {"unparseable": 2}


def test_unreachable_endpoint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    judge = HTTPJudge(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01,
                      timeout_s=1.0, on_error="count")
    assert judge.score_mixvid(["up"], ["up"]) == [None]
    assert judge.pop_errors() == {"unreachable": 1}


def test_api_key_comes_from_the_named_variable(server, tmp_path, monkeypatch):
    with pytest.raises(JudgeError, match="VVKIT_TEST_KEY"):
        make(server, tmp_path, api_key_env="VVKIT_TEST_KEY")
    monkeypatch.setenv("VVKIT_TEST_KEY", "sekrit")
    judge = make(server, tmp_path, api_key_env="VVKIT_TEST_KEY")
    judge.score_mixvid(["up"], ["up"])
    assert server.auth == ["Bearer sekrit"]
    assert "sekrit" not in pickle.dumps(judge).decode("latin-1")


def test_autodq_over_http(server, tmp_path):
    judge = make(server, tmp_path)
    ref = "the square enters. the square moves up. the circle grows."
    out = judge.autodq(["the square enters. the circle shrinks.", ""], [ref, ref])
    assert (out[0]["recall"], out[0]["precision"]) == (pytest.approx(1 / 3), 0.5)
    assert out[1]["recall"] == 0.0 and out[1]["precision"] == 0.0


def test_rewards_with_http_judge_count_failures(server, tmp_path):
    fn = R.get_reward_funcs(["accuracy"], judge="http", judge_base_url=server.url, judge_model="fake-judge",
                            judge_cache=str(tmp_path / "c.sqlite"), judge_on_error="count", judge_max_retries=0)[0]
    fn = pickle.loads(pickle.dumps(fn))  # as a rollout worker would receive it
    logged = []
    comps = ["<think>t</think><answer>up</answer>", "<think>t</think><answer>GARBLE</answer>"]
    out = fn(comps, solution=["up", "up"], problem_type=["mixvid", "mixvid"], options=[None, None],
             problem=["Which way?", "Which way?"], log_metric=lambda k, v: logged.append((k, v)))
    assert out == [1.0, None]
    assert ("accuracy/judge_unparseable", 1.0) in logged
