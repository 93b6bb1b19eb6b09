"""Completions read as a reader needs them: GRPO groups with their advantages, HTML pages of completions (one
prompt and its G completions at a time), and the notebooks' widgets (a completions viewer, a sample browser), each
with a static copy that a saved notebook keeps (widgets live in the kernel: a reopened notebook whose kernel has
stopped shows "Error displaying widget: model not found" in their place). DeepSeek-R1's and TRL's GRPO compare
the G completions of one prompt, so they are always shown together."""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from vvkit.rundir import is_interactive
from vvkit.schema import TASKS

if TYPE_CHECKING:
    from vvkit.schema import Row


# ---- GRPO groups -------------------------------------------------------------------------------------------

VIEW_COLUMNS = ("step", "policy", "condition", "id", "problem_type", "solution", "completion", "answer", "reward",
                "rewards", "score")
GROUP_COLUMNS = ("step", "policy", "condition", "id", "problem_type", "solution")  # shared by a prompt's completions


def _group_stats(group: Sequence[dict]) -> tuple[np.ndarray, float, float]:
    rewards = np.array([np.nan if r.get("reward") is None else r["reward"] for r in group], dtype=float)
    std = float(np.nanstd(rewards, ddof=1)) if len(group) > 1 else 0.0
    return rewards, float(np.nanmean(rewards)), 0.0 if math.isnan(std) else std


def group_table(records: Sequence[dict], step: int | None = None, task: str | None = None,
                varied: bool = False) -> pd.DataFrame:
    """One GRPO group from a stage's completions.jsonl: the G completions of one prompt, their rewards, the group
    mean and std, and each completion's advantage A_i = (r_i - mean) / std (TRL's `scale_rewards="group"`; 0 when
    the group's rewards are all equal). The group is the latest logged one (at `step` if given) of `task` (any if
    None) and, with `varied`, whose rewards differ: the groups GRPO learns from."""
    train = [r for r in records if r.get("mode", "train") == "train"]
    if not train:
        raise ValueError("no training completions logged (grpo_training.save_completions = 0?)")
    steps = sorted({r["step"] for r in train}, reverse=True) if step is None else [step]
    for s_ in steps:
        at = [r for r in train if r["step"] == s_ and (task is None or r.get("problem_type") == task)]
        for gid in dict.fromkeys(r["id"] for r in at):
            group = [r for r in at if r["id"] == gid]
            rewards, mean, std = _group_stats(group)
            if varied and std <= 1e-6:
                continue
            adv = (rewards - mean) / std if std > 1e-6 else np.zeros_like(rewards)
            df = pd.DataFrame({"completion": [r["completion"] for r in group], "reward": rewards.round(3),
                               "advantage": adv.round(2)})
            df.attrs.update(step=s_, id=gid, task=group[0].get("problem_type"), solution=group[0].get("solution"),
                            mean=round(mean, 3), std=round(std, 3))
            return df
    want = f"{task} " if task else ""
    raise ValueError(f"no {'varied ' * varied}{want}group logged at step(s) {steps[:5]}{'...' * (len(steps) > 5)}; "
                     f"logged steps: {sorted({r['step'] for r in train})[:10]}")


def teaching_group(records: Sequence[dict], tasks: Sequence[str] = ("dark_event", "mixvid")) -> pd.DataFrame:
    """The group to show a reader: the latest group with reward spread of the first of `tasks` that has one, else
    of any task; when no logged group has spread, the latest group, with a printed note saying why every advantage is
    0 (also in `attrs["note"]`)."""
    for task in [*tasks, None]:
        try:
            return group_table(records, task=task, varied=True)
        except ValueError:
            continue
    group = group_table(records)  # raises when nothing is logged
    group.attrs["note"] = no_spread_note(records)
    print(group.attrs["note"])
    return group


def no_spread_note(records: Sequence[dict]) -> str:
    """Why a log without reward spread teaches nothing: GRPO's advantage is each reward minus its group's mean."""
    groups = completion_groups([r for r in records if r.get("mode", "train") == "train"])
    rewards = sorted({round(float(r["reward"]), 3) for g in groups for r in g if r.get("reward") is not None})
    note = (f"No logged group had reward spread: in each of the {len(groups)} logged groups every completion scored "
            f"the same (rewards seen: {rewards[:8]}), so every advantage A_i = (r_i - mean) / std is 0 and these "
            "steps pushed no completion up or down. Showing the latest group.")
    if rewards == [0.0]:
        note += (" Every completion earned 0: under the format gate a completion without a closed "
                 "<think>...</think><answer>...</answer> earns nothing (is max_completion_length long enough?).")
    return note


def one_per_task(rows: Sequence[Row], tasks: Sequence[str] | None = None) -> list[Row]:
    """The first row of each task (`vvkit.schema.TASKS` order by default) that `rows` hold: a preview set."""
    firsts = {}
    for r in rows:
        firsts.setdefault(r.problem_type, r)
    return [firsts[t] for t in (tasks or TASKS) if t in firsts]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3f}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_cell(x)}" for k, x in v.items())
    return "" if v is None else str(v)


def completion_groups(records: Sequence[dict]) -> list[list[dict]]:
    """Records grouped by prompt (training step and row id), in first-seen order: GRPO's G completions of one
    prompt are compared with each other, so they are read together."""
    groups: dict[tuple, list[dict]] = {}
    for i, r in enumerate(records):
        key = (r.get("step"), r.get("policy"), r.get("condition"), r.get("id", i if "step" not in r else None))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def _prompt_text(row: Any) -> str:
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    options = get("options") or []
    return str(get("problem", "")) + ("".join(f"\n{o}" for o in options) if options else "")


PRE = "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;font-family:monospace;margin:0"


def group_html(group: Sequence[dict], row: Any = None) -> str:
    """One prompt: what is shared (task, id, step, the question and its options when `row` is given, the
    reference), then a table of its completions with their rewards."""
    first = group[0]
    facts = [f"<b>{html.escape(c)}</b> {html.escape(_cell(first[c]))}" for c in GROUP_COLUMNS[:-1]
             if first.get(c) is not None]
    parts = [f"<p style='margin:4px 0'>{' &middot; '.join(facts)} &middot; {len(group)} completion(s)</p>"]
    if row is not None:
        parts.append(f"<p style='margin:4px 0'><b>prompt</b></p><pre style='{PRE}'>{html.escape(_prompt_text(row))}"
                     "</pre>")
    if first.get("solution") is not None:
        parts.append(f"<p style='margin:4px 0'><b>reference</b> {html.escape(str(first['solution']))}</p>")
    cols = [c for c in VIEW_COLUMNS if c not in GROUP_COLUMNS and any(c in r for r in group)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in group:
        cells = [f"<td style='{PRE};max-width:48em'>{html.escape(_cell(r.get(c)))}</td>" if c == "completion"
                 else f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols]
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = (f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>{head}</tr>{''.join(body)}"
             "</table>")
    return "<div style='margin-bottom:1em'>" + "".join(parts) + table + "</div>"


def completions_html(records: Sequence[dict], title: str = "completions", rows: Sequence[Any] = ()) -> str:
    """A static HTML page of completions, one section per prompt (text escaped, long reasoning kept); `rows`
    (Row objects or dicts with an `id`) add each prompt's question and options."""
    by_id = {(r.get("id") if isinstance(r, dict) else r.id): r for r in rows}
    body = "".join(group_html(g, by_id.get(g[0].get("id"))) for g in completion_groups(records))
    return (f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h2>{html.escape(title)}</h2>{body}</body></html>")


def show_completions(records: Sequence[dict], out_path: str | os.PathLike, n: int = 24,
                     interactive: bool | None = None, title: str = "completions", rows: Sequence[Any] = ()) -> Path:
    """Write the first `n` prompts (each with all its completions) as HTML to `out_path`; in a notebook also show a
    static copy of the first prompt and, in a live session, a viewer (ipywidgets) under its title that browses
    every prompt, filtered by task, one group at a time."""
    from vvkit.io import atomic_write_text

    records = list(records)
    groups = completion_groups(records)
    path = atomic_write_text(Path(out_path), completions_html([r for g in groups[:n] for r in g], title, rows))
    by_id = {(r.get("id") if isinstance(r, dict) else r.id): r for r in rows}
    show_widget(lambda: completions_viewer(groups, title, rows),
                lambda: group_html(groups[0], by_id.get(groups[0][0].get("id"))) if groups else "<p>no completions</p>",
                f"{title}: the first prompt", interactive)
    return path


def completions_viewer(groups: Sequence[Sequence[dict]], title: str = "completions", rows: Sequence[Any] = ()) -> Any:
    """Title, then the controls (task, prompt slider, previous / next), then the chosen prompt's completions."""
    import ipywidgets as w

    by_id = {(r.get("id") if isinstance(r, dict) else r.id): r for r in rows}
    tasks = sorted({str(g[0].get("problem_type")) for g in groups})
    count = {t: sum(str(g[0].get("problem_type")) == t for g in groups) for t in tasks}
    task = w.Dropdown(options=[(f"all tasks ({len(groups)} prompts)", "all")]
                      + [(f"{t} ({count[t]})", t) for t in tasks], description="task")
    pick = w.IntSlider(min=0, max=max(0, len(groups) - 1), description="prompt", continuous_update=False,
                       readout=False, layout=w.Layout(width="30%"))
    prev, nxt = (w.Button(description=d, tooltip=t, layout=w.Layout(width="3em"))
                 for d, t in (("<", "previous prompt"), (">", "next prompt")))
    where, view = w.Label(), w.HTML()

    def chosen() -> list[Sequence[dict]]:
        return [g for g in groups if task.value == "all" or str(g[0].get("problem_type")) == task.value]

    def render(*_: Any) -> None:
        pick_groups = chosen()
        pick.max = max(0, len(pick_groups) - 1)
        if not pick_groups:
            where.value, view.value = "no prompts", ""
            return
        g = pick_groups[pick.value]
        where.value = f"prompt {pick.value + 1} of {len(pick_groups)}"
        view.value = group_html(g, by_id.get(g[0].get("id")))

    def step(delta: int) -> None:
        pick.value = min(pick.max, max(0, pick.value + delta))

    task.observe(lambda _: (setattr(pick, "value", 0), render()), "value")
    pick.observe(render, "value")
    prev.on_click(lambda _: step(-1))
    nxt.on_click(lambda _: step(1))
    render()
    return w.VBox([w.HTML(f"<h3 style='margin:8px 0 4px'>{html.escape(title)}</h3>"),
                   w.HBox([task, prev, pick, nxt, where], layout=w.Layout(flex_flow="row wrap", align_items="center")),
                   view])


# ---- widgets and their static copies --------------------------------------------------------------------------

def _in_notebook() -> bool:
    """True under an IPython kernel, live or headless (papermill): what is displayed is kept in the notebook."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def static_copy(body: str, what: str, live: bool) -> str:
    """`body` (HTML) under a one-line summary: folded beside a live widget, open when it is the only view."""
    summary = (f"{what} (static copy; widgets live in the kernel: if a widget above shows 'model not found', "
               "re-run the cell)") if live else f"{what} (static copy; a live session adds a browser)"
    return f"<details{'' if live else ' open'}><summary>{html.escape(summary)}</summary>{body}</details>"


def show_widget(widget: Callable[[], Any], static: Callable[[], str], what: str,
                interactive: bool | None = None) -> None:
    """Display `widget()` in a live session, and in any notebook `static()` (HTML) as a copy the saved notebook
    keeps; outside a notebook, nothing."""
    live = is_interactive() if interactive is None else interactive
    if not (live or _in_notebook()):
        return
    from IPython.display import HTML, display

    if live:
        display(widget())
    display(HTML(static_copy(static(), what, live)))


def _figure_html(fig: Any) -> str:
    import base64
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f"<img style='max-width:100%' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def _row_text(row: Row) -> str:
    from vvkit.prompts import build_prompt
    from vvkit.viz import describe, wrap_text

    return (f"{row.id}  [{row.problem_type}, {describe(row)}, {row.split}]\n{wrap_text(build_prompt(row))}"
            f"\n=> {row.solution}")


def sample_html(row: Row, frames: dict | None = None) -> str:
    """One row as a static page: its prompt and answer, then its frames (`vvkit.viz.plot_row`)."""
    from vvkit.viz import plot_row

    return f"<pre style='{PRE}'>{html.escape(_row_text(row))}</pre>{_figure_html(plot_row(row, frames))}"


def sample_browser(rows: Sequence[Row], frames: dict | None = None) -> Any:
    """An ipywidgets browser: pick a row, see its prompt, answer and frames (interactive sessions only)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from vvkit.viz import plot_row

    out = W.Output()
    pick = W.IntSlider(0, 0, max(0, len(rows) - 1), description=f"row (of {len(rows)})", continuous_update=False,
                       style={"description_width": "initial"}, layout=W.Layout(width="60%"))

    def show(change: Any = None) -> None:
        row = rows[pick.value]
        with out:
            out.clear_output(wait=True)
            print(_row_text(row))
            plot_row(row, frames)
            plt.show()

    pick.observe(show, names="value")
    show()
    return W.VBox([pick, out])


def browse_samples(rows: Sequence[Row], frames: dict | None = None, interactive: bool | None = None) -> None:
    """The sample browser in a live session, and the first row as a static copy in any notebook."""
    if not rows:
        print("no rows to browse")
        return
    show_widget(lambda: sample_browser(rows, frames), lambda: sample_html(rows[0], frames),
                f"the first of {len(rows)} rows", interactive)


__all__ = ["browse_samples", "completion_groups", "completions_html", "completions_viewer", "group_html",
           "group_table", "no_spread_note", "one_per_task", "sample_browser", "sample_html", "show_completions",
           "show_widget", "static_copy", "teaching_group"]
