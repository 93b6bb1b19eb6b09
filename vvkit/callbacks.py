"""Trainer callbacks for vvkit runs: per-step metrics to JSONL, the resolved config in every checkpoint, a live
reward/length plot, and a periodic policy evaluation hook. Resuming drops log lines past the checkpoint, so a
resumed run has each step exactly once (nanoGPT keeps the config in every checkpoint; cleanrl logs every metric)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from vvkit.io import append_jsonl, atomic_write_json, atomic_write_jsonl

from vvkit.rundir import COMPLETIONS_FILE, CONFIG_FILE, METRICS_FILE, StageDir


def config_record(args: Any) -> dict:
    """The resolved training config as JSON-ready dict (TrainingArguments.to_dict handles enums and paths)."""
    d = args.to_dict()
    return json.loads(json.dumps(d, default=str))


def read_log(path: str | Path) -> list[dict]:
    """Records of a JSONL log; an empty list when it does not exist yet (a run that has not logged)."""
    from vvkit.io import read_jsonl

    path = Path(path)
    return read_jsonl(path) if path.exists() else []


def truncate_log(path: Path, last_step: int) -> int:
    """Drop records whose step is past `last_step` (logged after the checkpoint we resume from), or every record
    when training starts afresh (`last_step` 0: an earlier run's log in the same folder); returns how many."""
    records = read_log(path)
    keep = [r for r in records if last_step > 0 and int(r.get("step", 0)) <= last_step]
    if len(keep) != len(records):
        atomic_write_jsonl(path, keep)
    return len(records) - len(keep)


class MetricsLogger(TrainerCallback):
    """Appends every log event (reward, reward per task and component, format rate, length, KL, entropy,
    frac_reward_zero_std, ...) as one line `{"step": ..., ...}` of `<output_dir>/metrics.jsonl`."""

    def __init__(self, output_dir: str | Path | None = None):
        self.output_dir = output_dir

    def _dir(self, args: Any) -> Path:
        return Path(self.output_dir or args.output_dir)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            for name in (METRICS_FILE, COMPLETIONS_FILE):
                truncate_log(self._dir(args) / name, state.global_step)
            atomic_write_json(self._dir(args) / CONFIG_FILE, config_record(args))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            append_jsonl(self._dir(args) / METRICS_FILE, {"step": state.global_step, **logs})


class ConfigInCheckpoint(TrainerCallback):
    """Writes the resolved config into every `checkpoint-N/` (training_args.bin is pickled; this is readable)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ckpt = StageDir(args.output_dir).checkpoint(state.global_step)
        if state.is_world_process_zero and ckpt.is_dir():
            atomic_write_json(ckpt / CONFIG_FILE, config_record(args))


class PolicyEval(TrainerCallback):
    """Calls `fn(model, processor) -> dict` every `every` optimizer steps (and at the end) and logs the result,
    e.g. greedy held-out accuracy from `vvkit.evaluate.accuracy_hook`: the hook the learning benchmark needs.

    With several processes it runs on the main process only (the others would repeat the same evaluation), except
    under ZeRO-3, where every forward needs every rank's shard: there all ranks run it and the main one logs."""

    def __init__(self, fn: Callable[..., dict], every: int, output_dir: str | Path | None = None):
        self.fn, self.every, self.output_dir = fn, max(1, int(every)), output_dir
        self.history: list[dict] = []

    def _run(self, args: Any, state: Any, model: Any, processing_class: Any) -> None:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

        if not state.is_world_process_zero and not is_deepspeed_zero3_enabled():
            return
        was_training = model.training
        model.eval()
        metrics = self.fn(model=model, processor=processing_class)
        if was_training:
            model.train()
        rec = {"step": state.global_step, **{f"eval/{k}" if not k.startswith("eval/") else k: v
                                             for k, v in metrics.items()}}
        self.history.append(rec)
        if state.is_world_process_zero:
            append_jsonl(Path(self.output_dir or args.output_dir) / METRICS_FILE, rec)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                       **kwargs: Any) -> None:
        if state.global_step == 0:
            self._run(args, state, model, processing_class)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                    **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._run(args, state, model, processing_class)


def trailing_mean(ys: tuple[float, ...] | list[float], window: int) -> list[float]:
    """Mean of each value and the window - 1 before it (fewer at the start)."""
    return [sum(ys[max(0, i - window + 1):i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(ys))]


class LivePlot(TrainerCallback):
    """Reward and completion length against step: redrawn live in Jupyter, saved as PNG at the end (headless too).
    Sized for JupyterLab's output area (7 in), the legend below the axes in 9 pt, whole-number steps and plain
    y numbers (a short run would otherwise show 0.5 steps and an offset such as '+1.2e1')."""

    KEYS = (("reward", "reward"), ("completions/mean_length", "completion length"))
    WIDTH = 7.0  # inches
    LEGEND_PT = 9

    def __init__(self, png_path: str | Path, interactive: bool | None = None, every: int = 1):
        from vvkit.rundir import is_interactive

        self.png_path = Path(png_path)
        self.interactive = is_interactive() if interactive is None else interactive
        self.every = max(1, int(every))
        self.history: list[dict] = []
        self._handle = None

    def figure(self) -> Any:
        """A two-panel matplotlib figure of the history so far (also per task type when logged)."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        fig, axes = plt.subplots(1, 2, figsize=(self.WIDTH, 3.2), layout="constrained")
        window = self.window(len(self.history))
        for ax, (key, title) in zip(axes, self.KEYS):
            keys = [key] + sorted({k for h in self.history for k in h if key == "reward" and k.startswith("reward/")})
            for k in keys:
                pts = [(h["step"], h[k]) for h in self.history if h.get(k) is not None]
                if pts:
                    steps, ys = zip(*pts)
                    mean = k == key and len(keys) > 1   # the all-tasks curve, drawn over the tasks
                    ax.plot(steps, trailing_mean(ys, window), label="all tasks" if k == key else k.removeprefix("reward/"),
                            lw=2.5 if mean else 1, color="black" if mean else None, zorder=3 if mean else 2)
            ax.set_xlabel("step" if window == 1 else f"step (mean of {window} steps)")
            ax.set_title(title)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
            ax.grid(alpha=0.3)
            if len(keys) > 1 and ax.get_lines():
                ax.legend(fontsize=self.LEGEND_PT, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3,
                          frameon=False)
        return fig

    @staticmethod
    def window(n_logs: int) -> int:
        """Steps per trailing mean: a few prompts per task per step make single steps jump between 0 and 1, so a
        long run is drawn as about 15 windows' worth of trend; a short run is drawn raw."""
        return max(1, round(n_logs / 15))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or "reward" not in logs:
            return
        self.history.append({"step": state.global_step, **logs})
        if self.interactive and state.is_world_process_zero and len(self.history) % self.every == 0:
            import matplotlib.pyplot as plt
            from IPython.display import display

            fig = self.figure()
            if self._handle is None:
                self._handle = display(fig, display_id=True)
            else:
                self._handle.update(fig)
            plt.close(fig)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.history:
            import matplotlib.pyplot as plt

            self.png_path.parent.mkdir(parents=True, exist_ok=True)
            fig = self.figure()
            fig.savefig(self.png_path, dpi=120, bbox_inches="tight")
            plt.close(fig)


class ProgressLines(TrainerCallback):
    """One `[vvkit]` line every `every` logged steps (step, loss or reward, format rate, seconds per step, ETA):
    what `vvkit run` streams to the terminal while a notebook trains, where tqdm bars would not show."""

    def __init__(self, stage: str, lines: int = 20):
        self.stage, self.lines, self.t0 = stage, lines, None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import time

        self.t0, self.step0 = time.perf_counter(), state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        import time

        if not logs or not state.is_world_process_zero or self.t0 is None or state.global_step == self.step0:
            return
        total = state.max_steps or 1
        every = max(1, total // self.lines)
        if state.global_step % every and state.global_step != total:
            return
        per_step = (time.perf_counter() - self.t0) / (state.global_step - self.step0)
        shown = [f"{k} {logs[k]:.3f}" for k in ("loss", "reward", "format_rate", "frac_reward_zero_std")
                 if isinstance(logs.get(k), (int, float))]
        if not shown:  # the end-of-training summary record
            return
        eta = per_step * (total - state.global_step)
        print(f"[vvkit] {self.stage} step {state.global_step}/{total} | " + " | ".join(shown)
              + f" | {per_step:.2f} s/step | ETA {eta / 60:.1f} min", flush=True)
