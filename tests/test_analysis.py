"""vvkit.analysis on a synthetic run folder: logs load into per-step tables, every plot lands as a PNG (each
training curve once), the before/after table and headline carry the right numbers, and report.md links the figures
and holds the tables."""
import json

import pytest

from vvkit.analysis import (LIVE_CURVES, benchmark_source, compare_table, headline, load_run, markdown_table,
                            plot_diagnostics, plot_training, save_curves, training_frame, write_report)
from vvkit.diagnostics import grounding_table
from vvkit.io import atomic_write_json, atomic_write_jsonl
from vvkit.rundir import RunDir


def step_record(step):
    return {"step": step, "loss": 0.1, "reward": 0.2 + 0.1 * step, "reward/mcq": 0.1 * step, "reward/caption": 0.5,
            "rewards/accuracy/mean": 0.3, "format_rate": min(1.0, 0.3 * step), "format_rate/mcq": 0.5,
            "completions/mean_length": 40 - step, "completions/min_length": 10, "completions/max_length": 60,
            "kl": 0.01 * step, "entropy": 2.0 - 0.1 * step, "frac_reward_zero_std": 0.5, "learning_rate": 1e-6}


def metrics(mcq, fmt, primary_mean):
    return {"mcq": {"n": 4, "accuracy": mcq, "format_rate": fmt, "primary": mcq, "chance": 0.25},
            "dark_event": {"n": 2, "score_mean": 1.5, "score_sum": 3.0, "format_rate": fmt, "primary": 0.75},
            "overall": {"n": 6, "format_rate": fmt, "primary_mean": primary_mean}}


@pytest.fixture
def run(tmp_path):
    """A run folder as notebooks 03 and 04 leave it: GRPO logs (with a resumed step, an eval hook record and the
    training summary) and evaluation results for two policies."""
    grpo = tmp_path / "train" / "grpo"
    recs = [step_record(s) for s in (1, 2, 3)] + [{**step_record(3), "reward": 9.0}]  # step 3 logged again (resume)
    recs += [{"step": 3, "eval/accuracy": 0.5}, {"step": 3, "train_runtime": 12.0, "train_loss": 0.1}]
    atomic_write_jsonl(grpo / "metrics.jsonl", recs)
    atomic_write_jsonl(grpo / "completions.jsonl", [
        {"step": 1, "id": "a", "problem_type": "mcq", "solution": "B",
         "completion": "<think>x</think><answer>B</answer>", "reward": 1.0}])
    for policy, mcq in (("warm_start", 0.25), ("grpo", 0.75)):
        for cond in ("video", "blank"):
            m = metrics(mcq if cond == "video" else 0.25, 0.5 if policy == "warm_start" else 1.0, 0.5)
            atomic_write_json(tmp_path / "eval" / policy / cond / "results.json", {"condition": cond, "metrics": m})
    atomic_write_json(tmp_path / "eval" / "grpo" / "shuffled" / "results.json", {"status": "running"})  # unfinished
    return tmp_path


def test_load_run_tables(run):
    logs = load_run(run)
    df = logs.train["grpo"]
    assert list(df.index) == [1, 2, 3] and df.loc[3, "reward"] == 9.0  # last record of a step wins
    assert "eval/accuracy" not in df and "train_runtime" not in df
    assert len(logs.completions["grpo"]) == 1
    assert set(logs.evals) == {"warm_start", "grpo"} and set(logs.evals["grpo"]) == {"video", "blank"}
    assert training_frame([]).empty


def test_training_plots_are_saved(run):
    df = load_run(run).train["grpo"]
    figs = plot_training(df)
    assert set(figs) == {"reward_per_task", "format_rate", "completion_length", "kl_entropy", "zero_std"}
    paths = save_curves(figs, RunDir(run), "03_grpo", leave_out=())
    assert [p.name for p in paths] == [f"03_grpo_{name}.png" for name in figs]
    assert all(p.parent == run / "figures" and p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    labels = [line.get_label() for line in figs["reward_per_task"].axes[0].get_lines()]
    assert labels == ["caption", "mcq", "all tasks"]  # the all-tasks curve is drawn last, on top
    # a log without kl (beta = 0) still plots, saying so
    texts = [t.get_text() for t in plot_training(df.drop(columns=["kl"]))["kl_entropy"].axes[0].texts]
    assert "not logged" in texts


def test_training_curves_have_whole_steps_and_plain_numbers(run):
    df = load_run(run).train["grpo"].iloc[:2]  # a short run: two steps
    df = df.assign(entropy=[12.34561, 12.34562])  # a near-constant value that would get an offset ('+1.2346e1')
    for fig in plot_training(df).values():
        fig.canvas.draw()
        for ax in fig.axes:
            assert all(float(t).is_integer() for t in ax.get_xticks())
            assert ax.yaxis.get_offset_text().get_text() == ""


def test_report_shows_each_training_curve_once(run):
    """The live plot (train) saves reward and length; notebook 03 saves the rest; notebook 04 saves none."""
    from types import SimpleNamespace

    from vvkit.callbacks import LivePlot

    rd = RunDir(run)
    live = LivePlot(rd.figure("03_grpo_curves"), interactive=False)
    live.history = [{"step": s, "reward": 0.1 * s, "reward/mcq": 0.2, "completions/mean_length": 9.0} for s in (1, 2)]
    live.on_train_end(None, SimpleNamespace(is_world_process_zero=True), None)
    assert [ax.get_title() for ax in live.figure().axes] == ["reward", "completion length"]  # = LIVE_CURVES
    assert LIVE_CURVES == ("reward_per_task", "completion_length")
    save_curves(plot_training(load_run(run).train["grpo"]), rd, "03_grpo")
    text = write_report(run, {"n": 1}).read_text()
    shown = [line.split("]")[0][2:] for line in text.splitlines() if line.startswith("![")]
    assert shown == ["03_grpo_curves", "03_grpo_format_rate", "03_grpo_kl_entropy", "03_grpo_zero_std"]


def test_benchmark_source_names_the_file_preset_and_seeds(tmp_path):
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"params": "params/default.yaml", "seeds": [0, 1, 2], "runs": []}))
    assert benchmark_source(path) == f"{path.as_posix()}, made with params/default.yaml, seeds 0, 1, 2"
    path.write_text(json.dumps({"runs": []}))
    assert benchmark_source(path) == f"{path.as_posix()}, made with an unrecorded preset"


def test_compare_table_and_headline(run):
    logs = load_run(run)
    video = {p: logs.evals[p]["video"]["metrics"] for p in ("warm_start", "grpo")}
    table = compare_table(video)
    assert table.loc[("mcq", "accuracy"), "change"] == pytest.approx(0.5)
    assert table.loc[("dark_event", "score_mean"), "grpo"] == 1.5
    assert table.loc[("mcq", "format_rate"), "change"] == pytest.approx(0.5)
    gtable, warnings = grounding_table({c: logs.evals["grpo"][c]["metrics"] for c in ("video", "blank")})
    head = headline(video, {"grpo": gtable})
    assert head["policy"] == "grpo" and head["mcq/accuracy"] == 0.75 and head["dark_event/score_mean"] == 1.5
    assert head["format_rate"] == 1.0 and head["primary_mean_change_vs_warm_start"] == 0.0
    assert head["grpo/min_grounding_gap"] == 0.0 and len(warnings) == 1 and "dark_event" in warnings[0]
    md = markdown_table(table)
    assert md.splitlines()[0].startswith("| task | metric | warm_start | grpo | change |") and "0.500" in md


def test_diagnostics_chart_and_report(run):
    logs = load_run(run)
    gtable, warnings = grounding_table({c: logs.evals["grpo"][c]["metrics"] for c in ("video", "blank")})
    plot_diagnostics(gtable, RunDir(run).figure("04_grpo_diagnostics"), title="grpo")
    save_curves(plot_training(logs.train["grpo"]), RunDir(run), "03_grpo")
    assert (run / "figures" / "04_grpo_diagnostics.png").is_file()
    head = {"policy": "grpo", "mcq/accuracy": 0.75}
    report = write_report(run, head, tables={"Grounding (grpo)": gtable}, warnings=warnings)
    text = report.read_text()
    assert report == run / "report.md" and '"mcq/accuracy": 0.75' in text
    assert "![04_grpo_diagnostics](figures/04_grpo_diagnostics.png)" in text
    assert text.count("![") == 4 and "## Grounding (grpo)" in text and "WARNING [grounding] dark_event" in text
    for line in text.splitlines():  # every linked figure exists relative to the run folder
        if line.startswith("!["):
            assert (run / line.split("(")[1].rstrip(")")).is_file()


def test_report_records_evaluation_settings(run):
    header = {"frames": {"fps": 1.0}, "prompt_version": "v1", "decoding": {"do_sample": False}, "policy": "x"}
    text = write_report(run, {"n": 1}, figures={}, settings=header).read_text()
    assert "## Evaluation settings" in text and '"prompt_version": "v1"' in text and '"policy"' not in text
    assert "![" not in text
