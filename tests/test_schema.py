"""The row schema: round trip, path resolution, datasets view, and named errors for malformed rows."""
import json

import pytest

from vvkit.prompts import INSTRUCTION, build_prompt, row_to_messages
from vvkit.synth.corpus import tokenizer_corpus
from vvkit.schema import COLUMNS, Row, RowError, from_record, load_rows, save_rows, to_dataset


def _rows(tmp_path):
    (tmp_path / "videos").mkdir()
    a, b = tmp_path / "videos" / "a.mp4", tmp_path / "videos" / "b.mp4"
    return [
        Row("r1", str(a), "What colour is the shape?", "B", "mcq", ["A. red", "B. blue", "C. green", "D. white"]),
        Row("r2", str(a), "Describe this video in detail.", "A red square enters.", "caption", split="test"),
        Row("r3", str(a), "What was hidden?", "The red square grows.", "dark_event", edits={"mask": [[1.0, 2.5]]},
            meta={"span": [1.0, 2.5]}),
        Row("r4", [str(a), str(b)], "Which clip?", "red", "mixvid", edits={"interleave": [[1, 0, 1.5], [0, 0, 2.0]]}),
    ]


def test_round_trip_relative_paths_and_dataset(tmp_path):
    rows = _rows(tmp_path)
    path = save_rows(rows, tmp_path / "train.jsonl")
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert raw[0]["video"] == "videos/a.mp4" and raw[3]["video"] == ["videos/a.mp4", "videos/b.mp4"]
    assert list(raw[0]) == list(COLUMNS)
    back = load_rows(path)
    assert back == rows  # relative paths resolve back to the absolute ones
    ds = to_dataset(back)
    assert len(ds) == 4 and ds[0]["video"] == [rows[0].video]
    assert [from_record(r) for r in ds] == rows


def _write(tmp_path, rows):
    p = tmp_path / "bad.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


GOOD = {"id": "x", "video": "a.mp4", "problem": "q?", "solution": "A", "problem_type": "mcq",
        "options": ["A. red", "B. blue"]}


@pytest.mark.parametrize("change, field, words", [
    ({"problem_type": "quiz"}, "problem_type", "not one of"),
    ({"solution": "C"}, "solution", "option letters"),
    ({"options": ["B. red", "A. blue"]}, "options", "lettered"),
    ({"options": None}, "options", "at least 2"),
    ({"problem": ""}, "problem", "non-empty"),
    ({"video": []}, "video", "non-empty list"),
    ({"edits": {"mask": [[2.0, 1.0]]}}, "edits", "start < end"),
    ({"edits": {"blur": [[0, 1]]}}, "edits", "unknown edit kind"),
    ({"edits": {"interleave": [[0, 0, 1]]}}, "edits", "list of source paths"),
    ({"video": ["a.mp4", "b.mp4"], "edits": {"interleave": [[2, 0, 1]]}}, "edits", "source index"),
    ({"split": "val"}, "split", "not one of"),
    ({"extra": 1}, "extra", "unknown column"),
    ({"meta": []}, "meta", "expected an object"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, change, field, words):
    bad = {**GOOD, **change}
    bad = {k: v for k, v in bad.items() if not (k == "options" and v is None)}
    p = _write(tmp_path, [GOOD | {"id": "ok"}, bad])
    with pytest.raises(RowError) as e:
        load_rows(p)
    msg = str(e.value)
    assert f"{p}:2" in msg and f"'{field}'" in msg and words in msg


def test_missing_field_and_duplicate_id(tmp_path):
    no_solution = {k: v for k, v in GOOD.items() if k != "solution"}
    with pytest.raises(RowError, match=r"bad.jsonl:1: field 'solution': missing"):
        load_rows(_write(tmp_path, [no_solution]))
    with pytest.raises(RowError, match=r"bad.jsonl:2: field 'id': duplicate id 'x' \(first at line 1\)"):
        load_rows(_write(tmp_path, [GOOD, GOOD]))
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_rows(p)


def test_prompts_list_options_and_instruction(tmp_path):
    row = _rows(tmp_path)[0]
    text = build_prompt(row)
    assert text.startswith("What colour is the shape?\nOptions:\nA. red\nB. blue") and text.endswith(INSTRUCTION)
    msgs = row_to_messages(row.to_dict())
    assert msgs[0]["content"][0] == {"type": "video"} and msgs[0]["content"][1]["text"] == text
    corpus = tokenizer_corpus()
    assert INSTRUCTION in corpus and any("purple triangle" in s for s in corpus) and len(corpus) == len(set(corpus))


def test_tokenizer_corpus_is_the_same_in_every_process():
    """The tiny policy folder is reused only when its corpus digest matches, so the corpus must not depend on
    Python's per-process string hashing."""
    import os
    import subprocess
    import sys

    code = "import json; from vvkit.synth.corpus import tokenizer_corpus; print(json.dumps(tokenizer_corpus()))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(outs) == 1


def test_the_authors_prompt_style_is_what_their_model_saw():
    from vvkit.prompts import AUTHORS_INSTRUCTION, row_to_messages

    row = Row("m", "v.mp4", "What colour?", "A", "mcq", ["A. red", "B. blue"],
              meta={"original_problem": "What colour?\nA. red\nB. blue"})
    system, user = row_to_messages(row, style="authors")
    assert system == {"role": "system", "content": "You are a helpful assistant."}  # the stock template's default
    assert user["content"][1]["text"] == "What colour?\nA. red\nB. blue" + AUTHORS_INSTRUCTION
    assert row_to_messages(row)[0]["role"] == "user"  # vvkit's own prompt has no system turn
    with pytest.raises(ValueError, match="prompt style"):
        row_to_messages(row, style="chatty")


def test_one_task_vocabulary_and_headline_metric():
    from vvkit import analysis, schema, study

    assert study.TASKS is schema.TASKS == ("dark_event", "mixvid", "mcq", "open_ended", "caption")
    assert analysis.HEADLINE_METRIC is schema.HEADLINE_METRIC and set(schema.HEADLINE_METRIC) == set(schema.TASKS)
    m = {"score_mean": 1.5, "accuracy": 0.5, "score": 0.25, "f1": 0.75}
    assert [study.task_score(t, m) for t in schema.TASKS] == [1.5, 0.5, 0.5, 0.25, 0.75]
