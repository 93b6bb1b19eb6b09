"""The one scorer (`vvkit.rewards.scorer`) and `vvkit.evaluate.sample_and_score`: every generate-and-score path grades
an answer with the run's reward settings. Notebook 03's before/after table once scored open-ended answers by ROUGE
while GRPO paid the judge; these tests fail on that split."""
from __future__ import annotations

import pandas as pd
import pytest

import vvkit.evaluate as E
import vvkit.rewards.scorer as S
from vvkit.rewards import RewardConfig, score_completion, score_rows

ROW = {"id": "q1", "problem_type": "open_ended", "problem": "What moved?", "solution": "the red square moved left",
       "options": None, "source": "toyworld", "meta": {}}
# Shares every word with the reference (ROUGE is high) yet the judge says it is wrong.
TEXT = "<think>looked</think><answer>the red square moved left</answer>"


class NoJudge:
    """A judge that calls every free answer wrong and counts its calls."""

    calls = 0

    def score_dark_event(self, preds, refs, questions=None):
        return [0.0] * len(preds)

    def score_mixvid(self, preds, refs, questions=None):
        NoJudge.calls += len(preds)
        return [0.0] * len(preds)

    def autodq(self, preds, refs):
        return [{"recall": 0.0, "precision": 0.0, "f1": 0.0}] * len(preds)


def test_the_scorer_takes_the_settings_and_has_no_defaults_of_its_own():
    with pytest.raises(TypeError):
        score_rows([TEXT], [ROW])  # no settings given: no silent second set of defaults
    judged = score_completion(TEXT, ROW, RewardConfig(open_ended_metric="judge"), NoJudge())
    rouge = score_completion(TEXT, ROW, RewardConfig(open_ended_metric="rouge_mean"), NoJudge())
    assert judged["score"] == 0.0 and rouge["score"] == pytest.approx(1.0)
    assert score_completion(TEXT, ROW, {"open_ended_metric": "judge", "gate": "add"}, NoJudge())["reward"] == 1.0


def test_sample_and_score_and_the_notebook_table_pay_what_grpo_pays(monkeypatch):
    import vvkit.analysis as A

    from vvkit.schema import from_record

    row = from_record({**ROW, "video": "clip.mp4"})
    monkeypatch.setattr(E, "sample_rows", lambda model, proc, rows, frames, n=1, **kw: [[TEXT] * n for _ in rows])
    monkeypatch.setattr(A, "load_policy", lambda policy, **kw: (None, None))
    rc = RewardConfig(open_ended_metric="judge")
    NoJudge.calls = 0
    groups = E.sample_and_score(None, None, [row], rc, {}, n=3, judge=NoJudge())
    assert [r["score"] for r in groups[0]] == [0.0, 0.0, 0.0] and NoJudge.calls == 3
    assert groups[0][0]["completion"] == TEXT
    monkeypatch.setattr(S, "make_judge", lambda **s: NoJudge())
    table = A.completions_table("policy", [row], {}, "after", rewards=rc)
    assert isinstance(table, pd.DataFrame) and table["reward"].tolist() == [0.0]  # the judge's verdict, not ROUGE
    hook = E.accuracy_hook([row], {}, rc, judge=NoJudge())
    assert hook(None, None)["accuracy"] == 0.0


def test_each_process_has_its_own_judge_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "0")
    first = RewardConfig().settings(str(tmp_path))["judge_cache"]
    monkeypatch.setenv("RANK", "3")
    other = RewardConfig().settings(str(tmp_path))["judge_cache"]
    assert first.endswith("judge_cache.sqlite") and other.endswith("judge_cache.rank3.sqlite") and first != other
    assert RewardConfig(judge_cache="/x.sqlite").settings(str(tmp_path))["judge_cache"] == "/x.sqlite"


def test_evaluation_uses_the_run_folders_judge_cache(monkeypatch, tmp_path):
    from vvkit.config import AnalysisConfig, EvalConfig

    seen = {}
    monkeypatch.setattr(E, "make_judge", lambda **s: seen.update(s) or NoJudge())
    monkeypatch.setenv("RANK", "0")
    E.run_judge(AnalysisConfig(run_dir=str(tmp_path)))
    assert seen["judge_cache"] == str(tmp_path / "rewards" / "judge_cache.sqlite")  # the cache training filled
    E.run_judge(EvalConfig())
    assert seen["judge_cache"] is None  # no run folder: no cache file is invented
