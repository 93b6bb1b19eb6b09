"""vvkit.analysis on a synthetic run folder: logs load into per-step tables, every plot lands as a PNG, the
before/after table and headline carry the right numbers, the completions viewer writes escaped HTML, and
report.md links the figures and holds the tables."""
import pytest

from vvkit.analysis import (compare_table, completions_html, headline, load_run, markdown_table, plot_diagnostics,
                            plot_training, show_completions, training_frame, write_report)
from vvkit.diagnostics import grounding_table
from vvkit.io import atomic_write_json, atomic_write_jsonl


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
    figs = plot_training(df, run / "figures")
    assert set(figs) == {"reward_per_task", "format_rate", "completion_length", "kl_entropy", "zero_std"}
    for name in figs:
        png = run / "figures" / f"04_grpo_{name}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    labels = [line.get_label() for line in figs["reward_per_task"].axes[0].get_lines()]
    assert labels == ["caption", "mcq", "all tasks"]  # the all-tasks curve is drawn last, on top
    # a log without kl (beta = 0) still plots, saying so
    plot_training(df.drop(columns=["kl"]), run / "figures", stage="nokl")
    assert (run / "figures" / "04_nokl_kl_entropy.png").is_file()


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
    plot_diagnostics(gtable, run / "figures" / "04_grpo_diagnostics.png", title="grpo")
    plot_training(logs.train["grpo"], run / "figures")
    assert (run / "figures" / "04_grpo_diagnostics.png").is_file()
    head = {"policy": "grpo", "mcq/accuracy": 0.75}
    report = write_report(run, head, tables={"Grounding (grpo)": gtable}, warnings=warnings)
    text = report.read_text()
    assert report == run / "report.md" and '"mcq/accuracy": 0.75' in text
    assert "![04_grpo_diagnostics](figures/04_grpo_diagnostics.png)" in text
    assert text.count("![") == 6 and "## Grounding (grpo)" in text and "WARNING [grounding] dark_event" in text
    for line in text.splitlines():  # every linked figure exists relative to the run folder
        if line.startswith("!["):
            assert (run / line.split("(")[1].rstrip(")")).is_file()


def test_completions_viewer_writes_escaped_html(run):
    recs = [{"step": 1, "problem_type": "mcq", "completion": "<think>a < b</think><answer>B</answer>", "reward": 1.0},
            {"step": 2, "problem_type": "caption", "completion": "x", "reward": None}]
    path = show_completions(recs, run / "completions.html", n=1, interactive=False)
    text = path.read_text()
    assert "&lt;think&gt;a &lt; b&lt;/think&gt;" in text and "1.000" in text and "caption" not in text
    assert "<th>reward</th>" in completions_html(recs) and "<td></td>" in completions_html(recs)  # None shown empty


def test_report_records_evaluation_settings(run):
    header = {"frames": {"fps": 1.0}, "prompt_version": "v1", "decoding": {"do_sample": False}, "policy": "x"}
    text = write_report(run, {"n": 1}, figures={}, settings=header).read_text()
    assert "## Evaluation settings" in text and '"prompt_version": "v1"' in text and '"policy"' not in text
    assert "![" not in text


def test_group_table_computes_group_relative_advantages():
    from vvkit.analysis import group_table

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
    from vvkit.analysis import group_table

    def rec(step, gid, task, reward):
        return {"step": step, "mode": "train", "id": gid, "problem_type": task, "completion": "c", "reward": reward}

    recs = [rec(5, "a", "mcq", 1.0), rec(5, "a", "mcq", 0.0), rec(5, "d", "dark_event", 2.0),
            rec(5, "d", "dark_event", 2.0), rec(4, "e", "dark_event", 2.0), rec(4, "e", "dark_event", 0.0)]
    assert group_table(recs, task="dark_event").attrs["id"] == "d"  # latest, even if it teaches nothing
    varied = group_table(recs, task="dark_event", varied=True)
    assert varied.attrs["id"] == "e" and varied.attrs["step"] == 4 and varied["advantage"].tolist() == [0.71, -0.71]
    with pytest.raises(ValueError, match="varied mixvid"):
        group_table(recs, task="mixvid", varied=True)
