"""vvkit.viewer: GRPO groups and their advantages (the group shown to a reader, or why none teaches), escaped HTML
pages of completions, and the static copy every widget leaves in a saved notebook."""
import pytest

from vvkit.viewer import (completions_html, group_table, no_spread_note, show_completions, show_widget, static_copy,
                          teaching_group)


def test_completions_viewer_writes_escaped_html(tmp_path):
    recs = [{"step": 1, "problem_type": "mcq", "completion": "<think>a < b</think><answer>B</answer>", "reward": 1.0},
            {"step": 2, "problem_type": "caption", "completion": "x", "reward": None}]
    path = show_completions(recs, tmp_path / "completions.html", n=1, interactive=False)
    text = path.read_text()
    assert "&lt;think&gt;a &lt; b&lt;/think&gt;" in text and "1.000" in text and "caption" not in text
    assert "<th>reward</th>" in completions_html(recs) and "<td></td>" in completions_html(recs)  # None shown empty


def test_group_table_computes_group_relative_advantages():
    recs = [{"step": 3, "mode": "train", "id": "a", "problem_type": "mcq", "solution": "B", "completion": f"c{i}",
             "reward": r} for i, r in enumerate([1.0, 0.0, 0.0, 1.0])]
    recs += [{"step": 3, "mode": "train", "id": "b", "completion": "x", "reward": 0.5},
             {"step": 2, "mode": "train", "id": "z", "completion": "y", "reward": 1.0}]
    df = group_table(recs)
    assert df.attrs["id"] == "a" and df.attrs["step"] == 3 and len(df) == 4
    assert df.attrs["mean"] == 0.5 and df["advantage"].tolist() == [0.87, -0.87, -0.87, 0.87]
    same = group_table([{**r, "reward": 1.0} for r in recs[:4]])
    assert same["advantage"].tolist() == [0.0] * 4  # equal rewards: no advantage, nothing learned


def test_group_table_finds_the_latest_varied_group_of_a_task():
    def rec(step, gid, task, reward):
        return {"step": step, "mode": "train", "id": gid, "problem_type": task, "completion": "c", "reward": reward}

    recs = [rec(5, "a", "mcq", 1.0), rec(5, "a", "mcq", 0.0), rec(5, "d", "dark_event", 2.0),
            rec(5, "d", "dark_event", 2.0), rec(4, "e", "dark_event", 2.0), rec(4, "e", "dark_event", 0.0)]
    assert group_table(recs, task="dark_event").attrs["id"] == "d"  # latest, even if it teaches nothing
    varied = group_table(recs, task="dark_event", varied=True)
    assert varied.attrs["id"] == "e" and varied.attrs["step"] == 4 and varied["advantage"].tolist() == [0.71, -0.71]
    with pytest.raises(ValueError, match="varied mixvid"):
        group_table(recs, task="mixvid", varied=True)


def test_teaching_group_prefers_spread_and_says_why_a_group_without_it_teaches_nothing(capsys):
    def rec(step, gid, task, reward):
        return {"step": step, "mode": "train", "id": gid, "problem_type": task, "completion": "c", "reward": reward}

    recs = [rec(2, "a", "mcq", 0.0), rec(2, "a", "mcq", 0.0), rec(1, "m", "mcq", 1.0), rec(1, "m", "mcq", 0.0)]
    assert teaching_group(recs).attrs["id"] == "m" and capsys.readouterr().out == ""  # spread found: no note
    zeros = [r for r in recs if r["id"] == "a"] + [rec(1, "d", "dark_event", 0.0), rec(1, "d", "dark_event", 0.0)]
    group = teaching_group(zeros)
    out = capsys.readouterr().out
    assert group.attrs["id"] == "a" and group["advantage"].tolist() == [0.0, 0.0]  # the latest group, shown anyway
    assert "No logged group had reward spread" in out and "2 logged groups" in out and "advantage" in out
    assert "Every completion earned 0" in out and group.attrs["note"] == out.strip()
    assert "Every completion earned 0" not in no_spread_note([rec(1, "x", "mcq", 1.0), rec(1, "x", "mcq", 1.0)])
    with pytest.raises(ValueError, match="no training completions"):
        teaching_group([])


def test_static_copy_is_open_alone_and_folded_beside_a_live_widget():
    alone = static_copy("<p>x</p>", "the first prompt", live=False)
    assert alone.startswith("<details open>") and "<p>x</p>" in alone
    beside = static_copy("<p>x</p>", "the first prompt", live=True)
    assert beside.startswith("<details>") and "re-run the cell" in beside and "model not found" in beside


def test_a_notebook_keeps_a_static_copy_of_each_widget(monkeypatch, tmp_path):
    import IPython.display

    import vvkit.viewer as V

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    recs = [{"step": 1, "id": "a", "problem_type": "mcq", "completion": "<answer>B</answer>", "reward": 1.0}]
    show_completions(recs, tmp_path / "c.html", interactive=False)  # plain Python: nothing displayed
    assert shown == []
    monkeypatch.setattr(V, "_in_notebook", lambda: True)  # a headless notebook (papermill): the static copy only
    show_completions(recs, tmp_path / "c.html", interactive=False, title="train")
    assert len(shown) == 1 and "&lt;answer&gt;B" in shown[0].data and "<details open>" in shown[0].data
    shown.clear()
    show_widget(lambda: "WIDGET", lambda: "<p>first page</p>", "x", interactive=True)  # live: widget, then copy
    assert shown[0] == "WIDGET" and "<p>first page</p>" in shown[1].data and len(shown) == 2


def test_a_sample_page_shows_the_prompt_and_the_frames(tmp_path):
    import numpy as np
    from test_synth import _written

    from vvkit.synth.dark_event import DarkEventSettings, make_dark_event_row
    from vvkit.viewer import sample_html

    _, _, av = _written(tmp_path, 5, "dark")
    row = make_dark_event_row(av, np.random.default_rng(0), DarkEventSettings(min_context_s=0.5), "d0")
    page = sample_html(row, {"nframes": 4, "min_pixels": 28 * 28, "max_pixels": 56 * 56, "backend": "pyav",
                             "timeout_s": 0})
    assert "d0  [dark_event" in page and "&lt;think&gt;" in page  # the prompt, escaped
    assert "<img" in page and "data:image/png;base64," in page
