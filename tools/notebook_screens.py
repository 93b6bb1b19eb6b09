"""Screenshots of the notebooks as a reader meets them in JupyterLab (a maintainers' check, not part of `make test`).

Starts JupyterLab from `.venv` on 127.0.0.1 with a random token, opens every notebook in headless Chromium (driven
by Playwright), runs it on a small run folder and saves one PNG per cell output (figures, widgets, tables, text),
then saves the notebook, reloads the page and saves the outputs again (what a reader sees when reopening it: a
widget whose model is gone shows "Error displaying widget"). It also records whether a freshly opened committed
notebook is already marked modified. See tools/README.md.

    PYTHONPATH=<playwright lib> .venv/bin/python tools/notebook_screens.py [--notebooks 01 02 04] [--run-dir runs/screens]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAB_SETTINGS = {  # JupyterLab user settings for a reproducible page: every cell rendered, no news pop-up
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}
BUSY_JS = """() => { const app = window.jupyterapp; const nb = app.shell.currentWidget;
  if (!nb || !nb.sessionContext || !nb.sessionContext.session || !nb.sessionContext.session.kernel) return 'nokernel';
  const st = nb.sessionContext.session.kernel.status;
  const busy = [...nb.node.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
  return busy ? 'busy' : st; }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_run(run_dir: Path, params: str) -> None:
    """A small finished run folder, so notebooks 03 and 04 have logs and checkpoints to show."""
    if (run_dir / "metrics" / "04_analysis.json").is_file():
        return
    print(f"building {run_dir} with {params} ...", flush=True)
    subprocess.run([str(REPO / ".venv/bin/vvkit"), "run", "--params", params, "--out", str(run_dir)], cwd=REPO,
                   check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def notebook_copy(src: Path, dst: Path, run_dir: Path) -> Path:
    """The notebook with its parameters cell pointing at `run_dir` (the committed file is left alone)."""
    nb = json.loads(src.read_text())
    rel = run_dir.resolve().relative_to(REPO).as_posix()
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            text = "".join(cell["source"])
            cell["source"] = re.sub(r'^run_dir = .*$', f'run_dir = "{rel}"', text, flags=re.M)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1))
    return dst


def start_lab(port: int, token: str, tmp: Path) -> subprocess.Popen:
    settings = tmp / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces")}
    log = open(tmp / "jupyter.log", "w")
    proc = subprocess.Popen([str(REPO / ".venv/bin/jupyter"), "lab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
                             "--LabApp.expose_app_in_browser=True"] + (["--allow-root"] if os.geteuid() == 0 else []), cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited; see {tmp / 'jupyter.log'}")
            time.sleep(1)
    raise RuntimeError(f"jupyter lab did not answer on port {port}; see {tmp / 'jupyter.log'}")


def open_notebook(page, base: str, rel: str) -> None:
    page.goto(f"{base}/lab/tree/{rel}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.context"
                           " && window.jupyterapp.shell.currentWidget.context.isReady", timeout=120_000)
    page.wait_for_timeout(1500)


def is_dirty(page) -> bool:
    return bool(page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty"))


def wait_idle(page, timeout_s: float) -> str:
    end, state = time.time() + timeout_s, ""
    page.wait_for_timeout(2000)
    while time.time() < end:
        state = page.evaluate(BUSY_JS)
        if state == "idle":
            page.wait_for_timeout(1500)  # let widgets and images render
            if page.evaluate(BUSY_JS) == "idle":
                return state
        page.wait_for_timeout(1000)
    return f"timeout ({state})"


def output_kind(el) -> str:
    if el.query_selector(".jp-RenderedImage img"):
        return "figure"
    if el.query_selector(".jupyter-widgets, .jp-OutputArea-output .widget-box, .lm-Widget.jupyter-widgets"):
        return "widget"
    if el.query_selector("table"):
        return "table"
    if el.query_selector(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']"):
        return "stderr"
    return "text"


def shoot_outputs(page, out: Path, prefix: str) -> list[dict]:
    """One PNG per output of every code cell, named <prefix>_cellNN_outM_<kind>.png."""
    shots = []
    node = page.evaluate_handle("() => window.jupyterapp.shell.currentWidget.content.node").as_element()
    cells = node.query_selector_all(".jp-Cell")
    for ci, cell in enumerate(cells):
        for oi, el in enumerate(cell.query_selector_all(".jp-OutputArea-child")):
            box = el.bounding_box()
            if not el.is_visible() or not box or box["height"] < 2:
                continue  # an empty output (a closed progress bar, a cleared widget)
            kind = output_kind(el)
            path = out / f"{prefix}_cell{ci:02d}_out{oi}_{kind}.png"
            el.screenshot(path=str(path), timeout=15_000)
            text = el.inner_text()[:300]
            shots.append({"file": path.name, "cell": ci, "kind": kind, "width": box.get("width"),
                          "height": box.get("height"), "error": "Error displaying widget" in text
                          or "Traceback" in text, "text": text if kind in ("stderr", "text") else ""})
    return shots


def run_notebook(page, base: str, nb_rel: str, out: Path, prefix: str, timeout_s: float) -> dict:
    open_notebook(page, base, nb_rel)
    page.wait_for_function("() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session;"
                           " return k && k.kernel && k.kernel.status === 'idle'; }", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    state = wait_idle(page, timeout_s)
    shots = shoot_outputs(page, out, f"{prefix}_run")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(2000)
    page.reload()
    open_notebook(page, base, nb_rel)
    page.wait_for_timeout(4000)
    reload_shots = shoot_outputs(page, out, f"{prefix}_reload")
    page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
    return {"state": state, "outputs": shots, "after_reload": reload_shots}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", nargs="*", default=["01", "02", "03", "04"], help="notebook numbers")
    ap.add_argument("--run-dir", default="runs/screens", help="run folder the notebooks open (built if missing)")
    ap.add_argument("--params", default="params/smoke.yaml", help="params for building --run-dir")
    ap.add_argument("--out", default=None, help="screenshot folder (default runs/notebook_screens/<time>)")
    ap.add_argument("--width", type=int, default=1280, help="browser window width in CSS px")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per notebook run")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright  # installed outside .venv, see tools/README.md

    run_dir = (REPO / args.run_dir).resolve()
    ensure_run(run_dir, args.params)
    out = Path(args.out or REPO / "runs" / "notebook_screens" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vvkit-screens-"))
    port, token = free_port(), secrets.token_hex(16)
    lab = start_lab(port, token, tmp)
    base, summary = f"http://127.0.0.1:{port}", {}
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(str(tmp / "chromium"), executable_path="/usr/bin/chromium",
                                                        headless=True, args=CHROMIUM_FLAGS,
                                                        viewport={"width": args.width, "height": 1000})
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(f"{base}/lab?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=120_000)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft && window.jupyterapp.shell.collapseLeft()")
            for num in args.notebooks:
                src = next((REPO / "notebooks").glob(f"{num}_*.ipynb"))
                open_notebook(page, base, src.relative_to(REPO).as_posix())
                page.wait_for_timeout(3000)
                dirty_on_open = is_dirty(page)
                page.evaluate("() => window.jupyterapp.commands.execute('application:close-all')")
                page.wait_for_timeout(1500)
                copy = notebook_copy(src, out / "notebooks" / src.name, run_dir)
                print(f"{src.stem}: running on {run_dir.relative_to(REPO)} ...", flush=True)
                res = run_notebook(page, base, copy.relative_to(REPO).as_posix(), out, src.stem[:2], args.timeout)
                res["dirty_on_open"] = dirty_on_open
                summary[src.stem] = res
                bad = [s["file"] for s in res["outputs"] + res["after_reload"] if s["error"]]
                print(f"  {res['state']}; {len(res['outputs'])} outputs; modified on open: {dirty_on_open};"
                      f" errors: {bad or 'none'}", flush=True)
                page.evaluate("() => window.jupyterapp.commands.execute('application:close-all')")
            ctx.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
        shutil.rmtree(tmp / "chromium", ignore_errors=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"screenshots: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
