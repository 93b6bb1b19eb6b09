"""vvkit.viz: frame figures are written where `RunDir.figure` says, a row's frames are drawn the way its task needs,
and the answer gallery draws one figure per chosen held-out answer with the question, reference, answer and score
in its title."""
import dataclasses

import numpy as np
import pytest

from vvkit.rundir import RunDir
from vvkit.viz import GALLERY_CHARS, WIDTH, answer_gallery, plot_row, save

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


def test_save_writes_a_png_where_the_run_folder_names_it(tmp_path, toy_rows):
    fig = plot_row(toy_rows[0], FRAMES)
    path = save(fig, RunDir(tmp_path).figure("01_dark_event"))
    assert path == tmp_path / "figures" / "01_dark_event.png" and path.read_bytes()[:4] == b"\x89PNG"


def test_plot_row_draws_each_task_its_own_way(toy_rows):
    dark, _, _, mix, mcq = toy_rows
    assert "DarkEventInfer" in plot_row(dark, FRAMES).get_suptitle()
    assert "MixVidQA" in plot_row(mix, FRAMES).get_suptitle()
    plain = plot_row(mcq, FRAMES)
    assert "sampled frames" in plain.get_suptitle() and plain.get_size_inches()[0] == pytest.approx(WIDTH)
