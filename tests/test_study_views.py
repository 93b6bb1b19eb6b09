"""The study's per-task table in notebook 04 (each task scored its own way, start vs GRPO, video vs blank) carries
exact numbers (the answer gallery is tested with the frame figures, tests/test_viz.py)."""
import math

from vvkit.analysis import task_table


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
