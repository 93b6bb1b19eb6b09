"""The study (vvkit.study): the instruct policy's cache key, every arm's data mix, and per-task evaluation of a
policy on held-out rows at a tiny scale."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from vvkit import data as D
from vvkit import instruct as I
from vvkit import study as S
from vvkit.config import read_params
from vvkit.schema import Row, load_rows
from vvkit.synth.toyworld import DIFFICULTIES, generate

ROOT = Path(__file__).resolve().parents[1]


def _row(i: int, task: str, video: str) -> Row:
    edits = {"mask": [[1.0, 2.0]]} if task == "dark_event" else None
    meta = {"video_ids": [video, "other"]} if task == "mixvid" else {"video_id": video}
    return Row(id=f"r{i}", video=f"{video}.mp4", problem="q", solution="red", problem_type=task, edits=edits, meta=meta)


@pytest.fixture
def pool() -> dict[str, list[Row]]:
    rows = [_row(i, t, f"v{i}") for t in S.TASKS for i in range(40 * (S.TASKS.index(t) + 1),
                                                                   40 * (S.TASKS.index(t) + 1) + 40)]
    return {t: [r for r in rows if r.problem_type == t] for t in S.TASKS}


def _params(tmp_path, **grpo) -> dict:
    params = read_params(ROOT / "params" / "default.yaml")
    params["grpo_training"].update({"instruct_start": None, "instruct_steps": 800,
                                    "instruct_cache": str(tmp_path / "cache"), **grpo})
    return params


def test_instruct_key_ignores_the_training_seed_and_rl_settings_but_not_what_shapes_the_policy(tmp_path):
    rows = [_row(i, t, f"v{i}") for i, t in enumerate(S.TASKS * 4)]
    base = S.arm_config(_params(tmp_path), "grpo", 0, tmp_path / "a", tmp_path)
    key = I.instruct_key(base, rows)
    for seed, over in ((7, {"learning_rate": 1.0, "max_steps": 3, "train_mix": {"mcq": 1}}), (0, {"beta": 0.5})):
        assert I.instruct_key(S.arm_config(_params(tmp_path, **over), "grpo", seed, tmp_path / "b", tmp_path),
                              rows) == key
    assert I.instruct_key(S.arm_config(_params(tmp_path), "no_proxy", 3, tmp_path / "c", tmp_path), rows) == key
    for change in ({"instruct_steps": 601}, {"sft_lr": 5e-4}, {"sft_reasoning": "Hmm."}, {"instruct_seed": 1}):
        cfg = S.arm_config(_params(tmp_path, **change), "grpo", 0, tmp_path / "d", tmp_path)
        assert I.instruct_key(cfg, rows) != key, change
    assert I.instruct_key(base, rows[1:]) != key
    assert I.instruct_key(base, rows, steps=400) != key  # each cached stage has its own key


def test_default_preset_is_the_study():
    params = read_params(ROOT / "params" / "default.yaml")
    assert set(params["data_synthesis"]["task_mix"]) == set(S.TASKS)
    mix = params["grpo_training"]["train_mix"]
    assert set(mix) == set(S.TASKS) and all(n > 0 for n in mix.values())
    assert params["grpo_training"]["instruct_start"] and not params["grpo_training"].get("sft_steps")
    assert params["analysis"]["compare"] == ["start", "grpo"]


def test_arm_configs_change_only_the_mix_or_the_seed(tmp_path):
    params = _params(tmp_path)
    grpo = S.arm_config(params, "grpo", 1, tmp_path / "g", tmp_path)
    no_proxy = S.arm_config(params, "no_proxy", 1, tmp_path / "n", tmp_path)
    assert grpo.seed == 1 and grpo.train_mix == params["grpo_training"]["train_mix"]
    assert no_proxy.train_mix == D.no_proxy_mix(grpo.train_mix)
    assert sum(no_proxy.train_mix.values()) == sum(grpo.train_mix.values())
    assert grpo.train_data == str(tmp_path / "train.jsonl") and grpo.output_dir == str(tmp_path / "g" / "train" / "grpo")
    with pytest.raises(ValueError, match="arm"):
        S.arm_config(params, "start", 0, tmp_path, tmp_path)


def test_grpo_mix_draws_its_counts_and_the_seed_decides_which(pool):
    rows = [r for t in S.TASKS for r in pool[t]]
    mix = {"dark_event": 10, "mixvid": 8, "mcq": 6, "open_ended": 4, "caption": 2}
    got = D.mixed_rows(rows, mix, seed=0)
    assert Counter(r.problem_type for r in got) == mix
    assert [r.id for r in D.mixed_rows(rows, mix, seed=0)] == [r.id for r in got]
    assert [r.id for r in D.mixed_rows(rows, mix, seed=1)] != [r.id for r in got]


def test_no_proxy_mix_gives_the_proxy_rows_to_mcq_and_captions():
    mix = {"dark_event": 10, "mixvid": 9, "mcq": 6, "open_ended": 4, "caption": 2}
    counts = D.no_proxy_mix(mix)
    assert counts["dark_event"] == counts["mixvid"] == 0
    assert sum(counts.values()) == sum(mix.values())
    assert counts["mcq"] == 6 + 10 and counts["caption"] == 2 + 9 and counts["open_ended"] == 4


def test_mixed_rows_names_the_task_the_rows_lack(pool):
    rows = [r for t in S.TASKS for r in pool[t]]
    with pytest.raises(ValueError, match="caption"):
        D.mixed_rows(rows, {"caption": 41}, seed=0)
    with pytest.raises(ValueError, match="unknown task"):
        D.mixed_rows(rows, {"captions": 1}, seed=0)


def test_instruct_rows_hold_single_unedited_clips_of_the_pretraining_half_only():
    rows = [_row(i, t, f"v{i}") for i, t in enumerate(S.TASKS * 20)]
    got = D.instruct_rows(rows, "I watch.")
    assert got and {r.problem_type for r in got} <= set(D.INSTRUCT_TASKS)
    assert all(not r.edits and D.pretraining_videos(r) and r.meta["reasoning"] == "I watch." for r in got)
    cfg = type("Cfg", (), {"instruct_steps": 1, "train_mix": None, "seed": 0})()
    rl_videos = {D.video_of(r) for r in D.rl_rows(cfg, rows)}
    assert rl_videos and not rl_videos & {D.video_of(r) for r in got}


def test_study_world_events_stay_visible_after_they_end():
    kinds = set()
    for seed in range(60):
        video = generate(seed, "study", size=56, min_duration=4.0, max_duration=6.0)
        assert len(video.kinds) == 1
        kinds |= {e.kind for e in video.events}
    assert kinds <= {"enters", *DIFFICULTIES["study"]["kinds"]} and "turns" in kinds and "moves" in kinds


def test_task_scores_cover_every_task_under_each_condition(tmp_path):
    from vvkit.config import stage_config
    from vvkit.model import build_tiny_policy

    params = read_params(ROOT / "params" / "default.yaml")
    params["data_synthesis"].update(num_videos=60)
    data = S.build_data(params, tmp_path)
    ecfg = stage_config(params, "analysis", run_dir=str(tmp_path), overrides={"max_new_tokens": 8, "progress": False})
    test = D.heldout_rows(load_rows(data / "test.jsonl"), 2)
    assert Counter(r.problem_type for r in test) == {t: 2 for t in S.TASKS}
    policy = build_tiny_policy(tmp_path / "micro", seed=0, size="micro")
    scores = S.task_scores(str(policy), test, ecfg)
    assert set(scores) == set(S.TASKS)
    for task, s in scores.items():
        top = 2.0 if task == "dark_event" else 1.0
        assert 0.0 <= s["score"] <= top and 0.0 <= s["blank"] <= top and 0.0 <= s["format_rate"] <= 1.0
    with pytest.raises(ValueError, match="held-out"):
        D.heldout_rows(test, 3)


def test_instruct_start_is_built_in_stages_cached_and_grpo_trains_on_the_mix(tmp_path):
    """End to end at micro scale: two one-step instruct stages, a cache hit on the second call, GRPO on the mix from
    the RL half of the videos, the SFT control on the same rows."""
    from vvkit.model import build_tiny_policy
    from vvkit.data import load_split
    from vvkit.instruct import start_policy

    params = _params(tmp_path, instruct_steps=2, instruct_stage_steps=1, sft_batch_size=2, max_steps=1,
                     per_device_train_batch_size=4, num_generations=2, max_completion_length=6,
                     train_mix={"dark_event": 1, "mixvid": 1, "mcq": 1, "open_ended": 1, "caption": 1})
    params["run"]["policy"] = str(build_tiny_policy(tmp_path / "micro", seed=0, size="micro"))
    params["data_synthesis"].update(num_videos=24)
    data = S.build_data(params, tmp_path / "study")
    cfg = S.arm_config(params, "grpo", 0, tmp_path / "grpo", data)
    first = start_policy(cfg)
    stages = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(stages) == 2 and first == I.instruct_folder(cfg, I.instruct_key(
        cfg, D.instruct_rows(load_split(cfg), cfg.sft_reasoning))) / "train" / "warm_start" / "policy"
    stamp = (first / "warm_start.json").stat().st_mtime_ns
    assert start_policy(cfg) == first and (first / "warm_start.json").stat().st_mtime_ns == stamp  # cached
    final = S.run_arm(cfg, "grpo")
    summary = json.loads((tmp_path / "grpo" / "train" / "grpo" / "summary.json").read_text())
    assert summary["start_policy"] == str(first) and summary["rows"] == 5 and (final / "config.json").is_file()
    sft = S.arm_config(params, "sft", 0, tmp_path / "sft", data)
    S.run_arm(sft, "sft")
    sft_rows = load_rows(tmp_path / "sft" / "sft_rows.jsonl")
    assert [r.id for r in sft_rows] == [r.id for r in D.rl_rows(cfg, load_split(cfg))]
    assert all(r.meta["reasoning"] == cfg.sft_reasoning for r in sft_rows)


def test_seed_table_gives_mean_spread_and_change_from_the_start():
    def rec(seed, arm, dei, blank=0.1):
        return {"seed": seed, "arm": arm, "tasks": {"dark_event": {"score": dei, "blank": blank}}}

    runs = [rec(0, "start", 0.2), rec(1, "start", 0.2), rec(0, "grpo", 0.6), rec(1, "grpo", 0.4, blank=0.3)]
    table = S.seed_table(runs)
    g = table.loc[("dark_event", "grpo")]
    assert g["seeds"] == 2 and g["mean"] == pytest.approx(0.5) and g["sd"] == pytest.approx(0.141421, abs=1e-5)
    assert (g["min"], g["max"]) == (0.4, 0.6) and g["blank"] == pytest.approx(0.2)
    assert g["change"] == pytest.approx(0.3)
    assert table.loc[("dark_event", "start")]["change"] == 0.0


def test_instruct_key_follows_the_videos_content_not_their_folder(tmp_path):
    cfg = S.arm_config(_params(tmp_path), "grpo", 0, tmp_path / "a", tmp_path)
    keys = []
    for folder, payload in (("one", b"x" * 10), ("two", b"x" * 10), ("three", b"x" * 11)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "v0.mp4").write_bytes(payload)
        keys.append(I.instruct_key(cfg, [Row(id="r0", video=str(tmp_path / folder / "v0.mp4"), problem="q",
                                             solution="red", problem_type="mcq")]))
    assert keys[0] == keys[1] != keys[2]


def test_training_curve_keeps_the_logged_rewards_spread_and_entropy_beside_the_policy(tmp_path):
    stage = tmp_path / "train" / "grpo"
    (stage / "final").mkdir(parents=True)
    logs = [{"step": 10, "reward": 0.123456, "reward/dark_event": 0.0, "frac_reward_zero_std": 0.5, "entropy": 0.09,
             "loss": 0.01, "kl": 0.002, "completions/mean_length": 30},
            {"step": 20, "reward": 0.2, "reward/mixvid": 0.3, "frac_reward_zero_std": 0.4},
            {"step": 20, "train_runtime": 12.0, "train_loss": 0.02}]  # the Trainer's closing summary: no curve point
    (stage / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs))
    curve = S.training_curve(stage / "final")
    assert curve == [{"step": 10, "reward": 0.1235, "frac_reward_zero_std": 0.5, "entropy": 0.09, "loss": 0.01,
                      "reward/dark_event": 0.0},
                     {"step": 20, "reward": 0.2, "frac_reward_zero_std": 0.4, "reward/mixvid": 0.3}]
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        S.training_curve(tmp_path / "elsewhere" / "final")


def test_plot_curves_draws_one_line_per_rl_run_and_names_the_fix_for_an_old_file(tmp_path):
    curve = [{"step": s, "reward": 0.1 * s, "reward/dark_event": 0.0, "reward/mixvid": 0.2,
              "frac_reward_zero_std": 0.5, "entropy": 0.1} for s in (10, 20)]
    runs = [{"seed": 0, "arm": "start", "tasks": {}}, {"seed": 0, "arm": "grpo", "tasks": {}, "curve": curve},
            {"seed": 1, "arm": "grpo", "tasks": {}, "curve": curve},
            {"seed": 0, "arm": "no_proxy", "tasks": {}, "curve": curve},
            {"seed": 0, "arm": "sft", "tasks": {}, "curve": [{"step": 10, "loss": 1.0}]}]
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"runs": runs}))
    fig = S.plot_curves(path)
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert len(panels) == len(S.CURVE_PANELS)
    styles = sorted(line.get_linestyle() for line in panels["entropy (nats / token)"].get_lines())
    assert styles == ["-", "-", "--"]  # two grpo seeds solid, no_proxy dashed, sft has no entropy curve
    path.write_text(json.dumps({"runs": [{k: v for k, v in r.items() if k != "curve"} for r in runs]}))
    with pytest.raises(ValueError, match="rerun"):
        S.plot_curves(path)


def test_describing_think_lever_thinks_each_question_s_caption_and_counts_what_it_leaves_out():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lever", ROOT / "benchmarks" / "lever_describing_think.py")
    lever = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lever)
    cap = Row(id="c", video="v1.mp4", problem="describe", solution="A red square moves right.", problem_type="caption",
              meta={"video_id": "v1"})
    rows, left_out = lever.describing_rows(
        [cap, _row(1, "mcq", "v1"), _row(2, "open_ended", "v2"), _row(3, "dark_event", "v1")], "I watch the video.")
    assert left_out == 1  # the open-ended row's video has no caption row; the dark row is never an instruct row
    assert [(r.id, r.meta["reasoning"]) for r in rows] == [("c", "I watch the video."),
                                                          ("r1", "A red square moves right.")]
    params = lever.study_params(Path("/tmp/start"), 24)
    default = read_params(ROOT / "params" / "default.yaml")
    assert params["grpo_training"]["instruct_start"] == "/tmp/start"
    assert params["grpo_training"]["max_completion_length"] == default["grpo_training"]["max_completion_length"] + 24
    assert params["analysis"]["max_new_tokens"] == default["analysis"]["max_new_tokens"] + 24
    inside = lever.study_params(ROOT / "benchmarks" / ".cache" / "x" / "start", 0)
    assert inside["grpo_training"]["instruct_start"] == "benchmarks/.cache/x/start"  # no machine path in the params
