"""The study (vvkit.study): the instruct policy's cache key, every arm's data mix, and per-task evaluation of a
policy on held-out rows at a tiny scale."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from vvkit import study as S
from vvkit.schema import Row, load_rows
from vvkit.synth.toyworld import DIFFICULTIES, generate


def _row(i: int, task: str, video: str) -> Row:
    edits = {"mask": [[1.0, 2.0]]} if task == "dark_event" else None
    meta = {"video_ids": [video, "other"]} if task == "mixvid" else {"video_id": video}
    return Row(id=f"r{i}", video=f"{video}.mp4", problem="q", solution="red", problem_type=task, edits=edits, meta=meta)


@pytest.fixture
def pool() -> dict[str, list[Row]]:
    rows = [_row(i, t, f"v{i}") for t in S.TASKS for i in range(40 * (S.TASKS.index(t) + 1),
                                                                   40 * (S.TASKS.index(t) + 1) + 40)]
    return {t: [r for r in rows if r.problem_type == t] for t in S.TASKS}


def test_instruct_key_ignores_the_study_seed_and_rl_settings_but_not_what_shapes_the_policy():
    base = S.StudyConfig()
    assert S.instruct_key(base) == S.instruct_key(dataclasses.replace(base, seed=7, learning_rate=1.0, max_steps=3,
                                                                      mix={"mcq": 1}))
    for change in ({"instruct_steps": 601}, {"instruct_lr": 5e-4}, {"num_videos": 10}, {"reasoning": "Hmm."},
                   {"data_seed": 1}, {"frames": {"nframes": 4}}):
        assert S.instruct_key(dataclasses.replace(base, **change)) != S.instruct_key(base), change


def test_grpo_arm_takes_the_mix_and_sft_trains_on_the_same_rows(pool):
    mix = {"dark_event": 10, "mixvid": 8, "mcq": 6, "open_ended": 4, "caption": 2}
    rows = S.arm_rows(pool, mix, "grpo", seed=0)
    assert Counter(r.problem_type for r in rows) == mix
    assert [r.id for r in S.arm_rows(pool, mix, "sft", seed=0)] == [r.id for r in rows]
    assert [r.id for r in S.arm_rows(pool, mix, "grpo", seed=1)] != [r.id for r in rows]


def test_no_proxy_arm_replaces_proxy_rows_with_as_many_mcq_and_caption_rows(pool):
    mix = {"dark_event": 10, "mixvid": 9, "mcq": 6, "open_ended": 4, "caption": 2}
    counts = Counter(r.problem_type for r in S.arm_rows(pool, mix, "no_proxy", seed=0))
    assert counts["dark_event"] == counts["mixvid"] == 0
    assert sum(counts.values()) == sum(mix.values())
    assert counts["mcq"] == 6 + 10 and counts["caption"] == 2 + 9 and counts["open_ended"] == 4


def test_arm_rows_names_the_task_the_pool_lacks(pool):
    with pytest.raises(ValueError, match="caption"):
        S.arm_rows(pool, {"caption": 41}, "grpo", seed=0)
    with pytest.raises(ValueError, match="arm"):
        S.arm_rows(pool, {"mcq": 1}, "start", seed=0)


def test_instruct_rows_hold_single_unedited_clips_of_the_pretraining_half_only():
    rows = [_row(i, t, f"v{i}") for i, t in enumerate(S.TASKS * 20)]
    got = S.instruct_rows(rows, "I watch.")
    assert got and {r.problem_type for r in got} <= set(S.INSTRUCT_TASKS)
    assert all(not r.edits and S.pretraining_videos(r) and r.meta["reasoning"] == "I watch." for r in got)
    pool = S.rl_pool(rows)
    rl_videos = {S.video_of(r) for t in S.TASKS for r in pool[t]}
    assert rl_videos and not rl_videos & {S.video_of(r) for r in got}


def test_study_world_events_stay_visible_after_they_end():
    kinds = set()
    for seed in range(60):
        video = generate(seed, "study", size=56, min_duration=4.0, max_duration=6.0)
        assert len(video.kinds) == 1
        kinds |= {e.kind for e in video.events}
    assert kinds <= {"enters", *DIFFICULTIES["study"]["kinds"]} and "turns" in kinds and "moves" in kinds


def test_task_scores_cover_every_task_under_each_condition(tmp_path):
    from vvkit.model import build_tiny_policy

    cfg = S.StudyConfig(root=str(tmp_path), num_videos=60, samples_per_video=3, eval_rows_per_task=2,
                        max_completion_length=8, eval_batch_size=10)
    data = S.build_data(cfg)
    test = S.heldout_rows(load_rows(data / "test.jsonl"), cfg.eval_rows_per_task)
    assert Counter(r.problem_type for r in test) == {t: 2 for t in S.TASKS}
    policy = build_tiny_policy(tmp_path / "micro", seed=0, size="micro")
    scores = S.task_scores(str(policy), test, cfg)
    assert set(scores) == set(S.TASKS)
    for task, s in scores.items():
        top = 2.0 if task == "dark_event" else 1.0
        assert 0.0 <= s["score"] <= top and 0.0 <= s["blank"] <= top and 0.0 <= s["format_rate"] <= 1.0
    with pytest.raises(ValueError, match="held-out"):
        S.heldout_rows(test, 3)
