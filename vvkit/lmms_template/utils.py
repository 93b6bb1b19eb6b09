"""lmms-eval task functions of a task exported by vvkit (`vvkit.lmms_tasks.export_tasks`; the layout of lmms-eval's
own `lmms_eval/tasks/<task>/utils.py`). The prompt and the edited video are the ones the kit evaluates with; answers
are scored by the kit's scorer with the exporting run's reward settings (`vvkit_task.json` beside this file)."""
from pathlib import Path

from vvkit import lmms_tasks as kit

HERE = Path(__file__).resolve().parent


def doc_to_visual(doc):
    return [str(HERE / doc["video"])]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["prompt"]


def process_results(doc, results):
    return kit.process_results(HERE, doc, results)


def aggregate_accuracy(records):
    return kit.aggregate(records, "accuracy")


def aggregate_score(records):
    return kit.aggregate(records, "score")


def aggregate_score_mean(records):
    return kit.aggregate(records, "score_mean")


def aggregate_score_sum(records):
    return kit.aggregate(records, "score_sum")


def aggregate_f1(records):
    return kit.aggregate(records, "f1")


def aggregate_precision(records):
    return kit.aggregate(records, "precision")


def aggregate_recall(records):
    return kit.aggregate(records, "recall")


def aggregate_format_rate(records):
    return kit.aggregate(records, "format_rate")


def aggregate_accuracy_lmms_reading(records):
    return kit.aggregate(records, "accuracy_lmms_reading")


def aggregate_reading_agreement(records):
    return kit.aggregate(records, "reading_agreement")
