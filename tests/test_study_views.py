"""The study's views in notebook 04: the per-task table (each task scored its own way, start vs GRPO, video vs
blank) carries exact numbers, and the answer gallery draws one figure per chosen held-out answer with the question,
reference, answer and score in its title."""
import dataclasses
import math

import numpy as np
import pytest

from vvkit.analysis import GALLERY_CHARS, answer_gallery, task_table


def _metrics(dark, mixvid, mcq=None):
    m = {"dark_event": {"n": 2, "score_mean": dark, "primary": dark / 2, "format_rate": 1.0},
         "mixvid": {"n": 4, "accuracy": mixvid, "primary": mixvid, "format_rate": 1.0},
         "overall": {"n": 6, "format_rate": 1.0, "primary_mean": 0.5}}
    if mcq is not None:
        m["mcq"] = {"n": 4, "accuracy": mcq, "primary": mcq, "chance": 0.25, "format_rate": 1.0}
    m["caption"] = {"n": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5, "primary": 0.5, "format_rate": 1.0}
    return m


def test_task_table_scores_each_task_its_own_way_with_the_change():
    results = {"start": {"video": _metrics(1.0, 0.5, mcq=0.75), "blank": _metrics(0.5, 0.5, mcq=0.5)},
               "grpo": {"video": _metrics(1.5, 0.75), "blank": _metrics(0.25, 0.5)}}
    table = task_table(results)
    assert list(table.index) == ["dark_event", "mixvid", "mcq", "caption"]  # TASKS order, "overall" left out
    assert list(table.columns) == ["start", "start blank", "grpo", "grpo blank", "change"]
    assert table.loc["dark_event"].tolist() == [1.0, 0.5, 1.5, 0.25, 0.5]  # judge mean 0-2, not primary
    assert table.loc["mixvid"].tolist() == [0.5, 0.5, 0.75, 0.5, 0.25]
    assert table.loc["caption"].tolist() == [0.5, 0.5, 0.5, 0.5, 0.0]  # AutoDQ F1
    assert table.at["mcq", "start"] == 0.75 and table.at["mcq", "start blank"] == 0.5
    assert all(math.isnan(table.at["mcq", c]) for c in ("grpo", "grpo blank", "change"))  # not evaluated


def test_task_table_of_one_policy_has_no_change_and_names_other_conditions():
    table = task_table({"grpo": {"video": _metrics(2.0, 1.0), "no_video": _metrics(0.0, 0.25)}})
    assert list(table.columns) == ["grpo", "grpo no_video"]
    assert table.loc["dark_event"].tolist() == [2.0, 0.0]
    assert table.loc["mixvid"].tolist() == [1.0, 0.25]


# toy rows and videos as the synthesis tests build them
FRAMES = {"nframes": 8, "min_pixels": 28 * 28, "max_pixels": 56 * 56, "backend": "pyav", "timeout_s": 0}


@pytest.fixture(scope="module")
def toy_rows(tmp_path_factory):
    from test_synth import _mixvid_row, _written

    from vvkit.synth.dark_event import DarkEventSettings, make_dark_event_row

    tmp = tmp_path_factory.mktemp("gallery")
    _, _, av = _written(tmp, 5, "dark")
    dark = make_dark_event_row(av, np.random.default_rng(0), DarkEventSettings(min_context_s=0.5), "d0")
    mix, _ = _mixvid_row(tmp)
    mcq = dataclasses.replace(dark, id="q0", problem_type="mcq", edits=None, options=["A. red", "B. blue"],
                              solution="A")
    return [dark, dataclasses.replace(dark, id="d1"), dataclasses.replace(dark, id="d2"), mix, mcq]


def _pred(row, answer, score):
    return {"id": row.id, "problem_type": row.problem_type, "solution": row.solution, "answer": answer,
            "score": score, "completion": f"<think>...</think><answer>{answer}</answer>"}


def test_answer_gallery_draws_the_first_answers_of_each_task_with_answer_and_score(toy_rows):
    dark, d1, d2, mix, mcq = toy_rows
    preds = [_pred(mcq, "A", 1.0), _pred(dark, "a ball rolls left", 2.0), _pred(mix, "the red square", 0.0),
             _pred(d1, "nothing happens", 0.0), _pred(d2, "never drawn", 1.0)]
    figs = answer_gallery(preds, toy_rows, FRAMES)
    assert len(figs) == 3  # two DarkEventInfer answers (per_task=2), one MixVidQA, no mcq
    titles = [f.get_suptitle() for f in figs]
    assert "a ball rolls left" in titles[0] and "score 2 (judge, 0-2)" in titles[0] and dark.id in titles[0]
    assert "nothing happens" in titles[1] and "score 0" in titles[1]
    assert "the red square" in titles[2] and "score 0 (1 = right)" in titles[2] and "MixVidQA" in titles[2]
    assert "Reference:" in titles[2] and all(len(line) <= GALLERY_CHARS for t in titles for line in t.splitlines())
    assert all(f.get_size_inches()[0] == pytest.approx(8.4) for f in figs)
    assert len(answer_gallery(preds, toy_rows, FRAMES, tasks=("mcq",), per_task=1)) == 1  # plain frame grid


def test_answer_gallery_names_a_prediction_without_its_row(toy_rows):
    preds = [{**_pred(toy_rows[0], "x", 1.0), "id": "gone"}]
    with pytest.raises(KeyError, match="gone"):
        answer_gallery(preds, toy_rows, FRAMES)
