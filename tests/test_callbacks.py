"""vvkit.callbacks.LivePlot: the live training plot reads at JupyterLab's width (at most 7.5 in, a legend of at
least 9 pt below the axes), counts whole steps and shows plain numbers even for a two-step run, and is saved as PNG
at the end."""
from types import SimpleNamespace

import pytest
from matplotlib.ticker import MaxNLocator

from vvkit.callbacks import LivePlot


@pytest.fixture
def short_run(tmp_path):
    live = LivePlot(tmp_path / "figures" / "03_grpo_curves.png", interactive=False)
    for step in (1, 2):  # a smoke run: two steps, a length that barely moves (an offset axis without the fix)
        live.on_log(None, SimpleNamespace(global_step=step, is_world_process_zero=True), None,
                    logs={"reward": 0.1 * step, "reward/dark_event": 0.0, "reward/mixvid": 0.5, "reward/mcq": 0.25,
                          "completions/mean_length": 12.34561 + 1e-5 * step})
    return live


def test_live_plot_reads_at_notebook_width(short_run):
    fig = short_run.figure()
    fig.canvas.draw()
    assert fig.get_size_inches()[0] <= 7.5
    reward, length = fig.axes
    legend = reward.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == [
        "all tasks", "dark_event", "mcq", "mixvid"]
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 9
    box = legend.get_window_extent()
    assert box.y1 <= reward.get_window_extent().y0  # below the axes, not over the curves
    for ax in fig.axes:
        assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
        assert all(float(t).is_integer() for t in ax.get_xticks())  # no step 1.5
        assert ax.yaxis.get_major_formatter().get_useOffset() is False
        assert ax.yaxis.get_offset_text().get_text() == ""
    assert length.get_legend() is None  # one curve: no legend


def test_live_plot_is_saved_at_the_end(short_run):
    short_run.on_train_end(None, SimpleNamespace(is_world_process_zero=True), None)
    assert short_run.png_path.read_bytes()[:4] == b"\x89PNG"


def test_long_run_reads_as_trends_with_the_mean_on_top(tmp_path):
    """150 steps of 0/1 rewards from a few prompts per task: raw, five jagged lines hide the all-tasks curve. The
    curves are trailing means over a window the axis names, and the all-tasks curve is drawn above the tasks."""
    import random

    rng = random.Random(0)
    live = LivePlot(tmp_path / "curves.png", interactive=False)
    for step in range(1, 151):
        task = {f"reward/{t}": float(rng.random() < 0.3) for t in ("dark_event", "mcq", "mixvid")}
        live.on_log(None, SimpleNamespace(global_step=step, is_world_process_zero=True), None,
                    logs={"reward": sum(task.values()) / 3, **task, "completions/mean_length": rng.uniform(15, 28)})
    reward = live.figure().axes[0]
    lines = {line.get_label(): line for line in reward.get_lines()}
    assert lines["all tasks"].get_zorder() > max(lines[t].get_zorder() for t in ("dark_event", "mcq", "mixvid"))
    assert reward.get_xlabel() == "step (mean of 10 steps)"
    ys = lines["dark_event"].get_ydata()
    steps = [abs(b - a) for a, b in zip(ys[10:], ys[11:])]
    assert len(ys) == 150 and max(steps) <= 0.1 + 1e-9      # raw values jump between 0 and 1 from step to step
