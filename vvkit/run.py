"""The run folder and the headless study: `vvkit run` executes the numbered notebooks with papermill.

A run folder `runs/<name>/` holds the resolved params, the seed, the code version, the executed notebooks and
every output, so a run can be redone from its folder (cleanrl's run naming, nanoGPT's config-in-checkpoint,
recommenders' parameters-tag notebooks).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vvkit.config import SHARED_SECTIONS, ConfigError, load_params, read_params, section_config, stage_config
from vvkit.io import atomic_write_json, atomic_write_text
from vvkit.rundir import RunDir, is_interactive, latest_run, read_metrics, record_metrics, repo_root

NOTEBOOK_RE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.ipynb$")
KERNEL_NAME = "vvkit"


DEFAULT_PARAMS = "params/default.yaml"


def notebook_config(section: str, params_file: str | os.PathLike | None = None,
                    run_dir: str | os.PathLike | None = "runs/interactive", overrides: dict | None = None) -> Any:
    """A notebook's config: the params file's `section` plus the shared sections, with the notebook's few knobs
    (`overrides`) over them. `params_file=None` reads the run folder's params.yaml when it has one (so opening a
    finished run just works), else the offline default preset; `vvkit run` passes the run's params.yaml, so an
    interactive session and a headless run see the same settings. `run_dir=None` opens the newest run folder under
    runs/ (`latest_run`: what notebook 04 reads by default). An unknown key is an error naming it."""
    if run_dir is None:
        run_dir = latest_run()
        print(f"[vvkit] run_dir=None: opening the newest run folder, {run_dir}")
    if params_file is None:
        params_file = RunDir(run_dir).params if RunDir(run_dir).params.is_file() else DEFAULT_PARAMS
    params_file = Path(params_file)
    if not params_file.is_absolute():
        params_file = repo_root() / params_file
    params = read_params(params_file)
    return stage_config(params, section, run_dir=str(RunDir(run_dir).root), overrides=overrides,
                        where=f"{params_file} (notebook overrides {sorted(overrides or {})})")


class NotebookFailed(RuntimeError):
    """A notebook of the study raised; the partial executed copy stays in the run folder."""


@dataclass
class NotebookSpec:
    number: int
    section: str  # params section name: the stem without its number
    path: Path


def find_notebooks(folder: str | os.PathLike = "notebooks") -> list[NotebookSpec]:
    """The numbered notebooks `NN_name.ipynb` of a folder, in order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: notebooks folder not found (run from the repository root or pass --notebooks)")
    specs = []
    for p in sorted(folder.iterdir()):
        m = NOTEBOOK_RE.match(p.name)
        if m:
            specs.append(NotebookSpec(int(m.group(1)), m.group(2), p))
    return specs


def code_version() -> str:
    """`git describe` of the checkout (with -dirty), or the package version outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from importlib.metadata import version

    return f"vvkit {version('vvkit')}"


def new_run_dir(name: str, seed: int, root: str | os.PathLike = "runs") -> Path:
    """`runs/<name>__seed<seed>__<YYYYmmdd-HHMMSS>` (cleanrl-style run names)."""
    return Path(root) / f"{name}__seed{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def notebook_parameters(params: dict, spec: NotebookSpec, run_dir: Path) -> dict:
    """What one notebook receives: the run folder's params file and the run folder (the notebook resolves its
    section with `notebook_config`), and a hash of what it will read, so `--resume` knows when it changed."""
    used = {k: params.get(k) for k in ("run", "frames", "rewards", spec.section)}
    return {"params_file": str(RunDir(run_dir).params), "run_dir": str(RunDir(run_dir).root), "overrides": {},
            "_hash": _params_hash(used)}


def _params_hash(p: dict) -> str:
    return hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_params(params_path: str | os.PathLike | None, out: str | os.PathLike | None, resume: bool) -> Path:
    """The params file a run reads. An existing run folder's own params.yaml wins when no file is given (`--resume`,
    `--only 4` on a finished run); a new folder without one gets the offline default preset. Resuming with a file
    whose settings differ from the folder's is an error: the finished notebooks were made with the folder's."""
    if resume and out is None:
        raise ConfigError("--resume continues a run folder: name it with --out runs/<name>")
    own = RunDir(out).params if out is not None else None
    if params_path is None:
        if own is not None and own.is_file():
            return own
        if resume:
            raise ConfigError(f"{RunDir(out).root}: no params.yaml, so there is no run to resume here; pass the folder "
                              f"`vvkit run` made (runs/<name>), or start a new run with --params")
        return repo_root() / DEFAULT_PARAMS
    params_path = Path(params_path)
    if resume and own is not None and own.is_file() and own.resolve() != params_path.resolve():
        if load_params(params_path) != read_params(own):
            raise ConfigError(f"--params {params_path} differs from the run folder's own {own}; a resumed run keeps the "
                              f"settings its finished notebooks were made with. Resume without --params (it reads "
                              f"{own}), or start another run folder (--out) with {params_path}")
    return params_path


def _resume_overrides(spec: NotebookSpec, params: dict, done: dict, params_hash: str, resume: bool) -> dict:
    """Knobs for a notebook resumed after an interruption with the same settings: a training notebook continues from
    its newest checkpoint (TrainingArguments.resume_from_checkpoint='last', read by vvkit.train.train) unless the
    params name one."""
    if not resume or done.get("params_hash") != params_hash or done.get("status") not in ("running", "failed"):
        return {}
    try:
        fields = {f.name for f in dataclasses.fields(section_config(spec.section))}
    except ConfigError:  # a notebook without a params section of its own
        return {}
    if "resume_from_checkpoint" in fields and "resume_from_checkpoint" not in (params.get(spec.section) or {}):
        return {"resume_from_checkpoint": "last"}
    return {}


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        raise RuntimeError(
            f"Jupyter kernel {KERNEL_NAME!r} is not registered for this environment. Register it with:\n"
            f"  {sys.executable} -m ipykernel install --prefix {sys.prefix} --name {KERNEL_NAME}"
        ) from None


def run_notebooks(
    params_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike = "notebooks",
    only: list[int] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Execute the numbered notebooks in order into one run folder; returns the run folder.

    `resume=True` skips notebooks that already finished in this folder with the same parameters, so a run
    interrupted in notebook 03 restarts there, and GRPO continues from its newest checkpoint. `params_path=None` reads
    an existing run folder's own params.yaml, else the default preset (`run_params`). Stopping the run (SIGTERM,
    SIGINT, SIGHUP) stops the notebook's kernel and what it started.
    """
    import papermill as pm

    _quiet_runner(progress)
    params_path = run_params(params_path, out, resume)
    from_folder = out is not None and params_path.resolve() == RunDir(out).params.resolve()
    params = load_params(params_path)
    run = params.get("run", {}) or {}
    seed = int(run.get("seed", 0))
    run_dir = RunDir(out or new_run_dir(run.get("name", Path(params_path).stem), seed)).root
    run_dir.mkdir(parents=True, exist_ok=True)
    specs = find_notebooks(notebooks_dir)
    wanted = only if only is not None else run.get("notebooks")
    if wanted is not None:
        specs = [s for s in specs if s.number in set(wanted)]
    if not specs:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) to run in {notebooks_dir}")
    _check_kernel()

    for section in params:  # every stage resolves before the first notebook starts
        if section not in SHARED_SECTIONS:
            stage_config(params, section, run_dir=str(run_dir), where=str(params_path))
    if not from_folder:
        atomic_write_text(RunDir(run_dir).params, yaml.safe_dump(params, sort_keys=False))
    state_path = RunDir(run_dir).state
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state.update(seed=seed, code_version=code_version(), python=sys.version.split()[0])
    if not from_folder or "params_file" not in state:  # the folder's own params: keep the preset it was made from
        state["params_file"] = str(params_path)
    state.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%S"))
    state.setdefault("notebooks", {})
    env_backup = os.environ.get("VVKIT_HEADLESS")
    os.environ["VVKIT_HEADLESS"] = "1"  # inherited by the kernel: widgets are skipped, plots are saved
    restore_signals = _stop_kernels_on_signals()
    try:
        for spec in specs:
            nb_params = notebook_parameters(params, spec, run_dir)
            key, h = spec.path.name, nb_params.pop("_hash")
            done = state["notebooks"].get(key, {})
            if resume and done.get("status") == "ok" and done.get("params_hash") == h:
                print(f"[vvkit] {key}: already done in this run folder, skipped (resume)")
                continue
            nb_params["overrides"] = _resume_overrides(spec, params, done, h, resume)
            if nb_params["overrides"]:
                print(f"[vvkit] {key}: resumed with {nb_params['overrides']}")
            out_nb = RunDir(run_dir).notebooks / key
            out_nb.parent.mkdir(parents=True, exist_ok=True)
            print(f"[vvkit] running {key} -> {out_nb}")
            t0 = time.time()
            state["notebooks"][key] = {"status": "running", "params_hash": h}
            atomic_write_json(state_path, state)
            try:
                pm.execute_notebook(
                    str(spec.path), str(out_nb), parameters=nb_params, kernel_name=KERNEL_NAME,
                    cwd=str(repo_root()), progress_bar=False, log_output=progress,
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"],  # no per-kernel TCP transport warning
                    kernel_manager_class=_kernel_manager_class(),
                )
            except pm.PapermillExecutionError as e:
                state["notebooks"][key] = {"status": "failed", "params_hash": h, "cell": e.exec_count,
                                           "error": f"{e.ename}: {e.evalue}", "seconds": round(time.time() - t0, 1)}
                atomic_write_json(state_path, state)
                raise NotebookFailed(
                    f"{key} failed in cell {e.exec_count} ({e.ename}: {e.evalue}). "
                    f"The partial executed copy is {out_nb}"
                ) from None
            finally:
                _KERNEL_GROUPS.clear()  # the kernel has been shut down: its group id may be reused
            state["notebooks"][key] = {"status": "ok", "params_hash": h, "seconds": round(time.time() - t0, 1)}
            atomic_write_json(state_path, state)
    finally:
        restore_signals()
        if env_backup is None:
            os.environ.pop("VVKIT_HEADLESS", None)
        else:
            os.environ["VVKIT_HEADLESS"] = env_backup
    state["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(state_path, state)
    return run_dir


# Process groups of the kernels `run_notebooks` started: jupyter_client starts every kernel in a session of its own
# (launcher.py, start_new_session=True), so a `kill` of the run's process group never reaches the kernel.
_KERNEL_GROUPS: set[int] = set()
_STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


def _kernel_manager_class() -> type:
    """jupyter_client's AsyncKernelManager that records its kernel's process group (what papermill passes on to
    nbclient's `kernel_manager_class`)."""
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            await super().start_kernel(**kw)
            group = getattr(self.provisioner, "pgid", None) or getattr(self.provisioner, "pid", None)
            if group:
                _KERNEL_GROUPS.add(int(group))

    return RunKernelManager


def _stop_kernels() -> None:
    for group in list(_KERNEL_GROUPS):
        try:
            os.killpg(group, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    _KERNEL_GROUPS.clear()


def _stop_kernels_on_signals() -> Any:
    """Install handlers that stop the kernels, then let the signal act as before (exit, or KeyboardInterrupt);
    returns the function that puts the previous handlers back. Only the main thread may set handlers."""
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(os, "killpg"):
        return lambda: None
    signums = [getattr(signal, name) for name in _STOP_SIGNALS if hasattr(signal, name)]
    previous = {s: signal.getsignal(s) or signal.SIG_DFL for s in signums}  # None: set outside Python

    def handler(signum: int, frame: Any) -> None:
        _stop_kernels()
        before = previous[signum]
        signal.signal(signum, before)
        if callable(before):
            before(signum, frame)
        elif before != signal.SIG_IGN:
            os.kill(os.getpid(), signum)  # the default action: end the process, as without the handler

    for s in signums:
        if previous[s] != signal.SIG_IGN:  # a run started under nohup keeps ignoring SIGHUP
            signal.signal(s, handler)

    def restore() -> None:
        for s in signums:
            signal.signal(s, previous[s])

    return restore


class _ProgressLines(logging.Handler):
    """Passes on the lines a notebook prints with the `[vvkit]` prefix (stage starts, training steps with reward and
    ETA, evaluation progress); cell outputs, figures and tables stay in the executed notebook."""

    def emit(self, record: logging.LogRecord) -> None:
        for line in str(record.getMessage()).splitlines():
            if line.lstrip().startswith("[vvkit]"):
                print("  " + line.strip(), flush=True)


def _quiet_runner(stream: bool) -> None:
    """Stream the notebooks' `[vvkit]` progress lines to the terminal, without the framework noise a user cannot
    act on (papermill's per-cell banners, every cell's output)."""
    log = logging.getLogger("papermill")
    log.propagate = False
    if stream and not any(isinstance(h, _ProgressLines) for h in log.handlers):
        log.addHandler(_ProgressLines())
    log.setLevel(logging.INFO if stream else logging.WARNING)


def run_summary(run_dir: str | os.PathLike) -> str:
    """A few lines for the terminal: where the report is and the headline numbers of each notebook."""
    run_dir = Path(run_dir)
    lines = [f"run folder: {run_dir}"]
    report = RunDir(run_dir).report
    if report.exists():
        lines.append(f"report:     {report}")
    state_file = RunDir(run_dir).state
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    for nb, info in state.get("notebooks", {}).items():
        lines.append(f"  {nb}: {info.get('status')} in {info.get('seconds', '?')} s")
    for name, metrics in read_metrics(run_dir).items():
        head = metrics.get("headline", metrics)
        flat = ", ".join(f"{k}={_fmt(v)}" for k, v in head.items() if isinstance(v, (int, float, str)))
        lines.append(f"  {name}: {flat[:300]}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


__all__ = [
    "ConfigError", "NotebookFailed", "RunDir", "find_notebooks", "notebook_config", "repo_root", "is_interactive", "new_run_dir", "read_metrics",
    "record_metrics", "run_notebooks", "run_summary",
]
