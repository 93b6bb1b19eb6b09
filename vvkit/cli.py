"""`vvkit` command line: `vvkit run` (the headless study), `vvkit params` (check a params file), `vvkit import-data`
(the authors' released training data as vvkit rows), `vvkit lmms-eval` / `vvkit lmms-tasks` (lmms-eval)."""
from __future__ import annotations

import argparse
import sys
import time


def _cmd_run(args: argparse.Namespace) -> int:
    from vvkit.run import run_notebooks, run_summary

    only = [int(x) for x in args.only.split(",")] if args.only else None
    t0 = time.time()
    run_dir = run_notebooks(args.params, out=args.out, notebooks_dir=args.notebooks, only=only, resume=args.resume)
    print(f"\n[vvkit] study finished in {time.time() - t0:.0f} s")
    print(run_summary(run_dir))
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from vvkit.config import load_params

    params = load_params(args.params)
    print(f"{args.params}: ok ({', '.join(params)})")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from vvkit.synth.importers import DataImportError, import_data

    try:
        rows, report = import_data(args.input, args.format, args.video_root, args.out, args.strip_prefix, args.strict)
    except DataImportError as e:
        print(f"vvkit: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


def _cmd_lmms_eval(args: argparse.Namespace) -> int:
    from vvkit.lmms_eval import main as lmms_eval_main

    return lmms_eval_main(args)


def _cmd_lmms_tasks(args: argparse.Namespace) -> int:
    from vvkit.lmms_tasks import main as lmms_tasks_main

    return lmms_tasks_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vvkit", description="Reinforcement-learned video reasoning kit.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the numbered notebooks headless into a run folder")
    p.add_argument("--params", default=None,
                   help="params preset (YAML); default: the params.yaml of an existing --out folder, else "
                        "params/default.yaml. With --resume it must match the folder's own params.yaml")
    p.add_argument("--out", default=None, help="run folder (default runs/<name>__seed<seed>__<time>)")
    p.add_argument("--notebooks", default="notebooks", help="folder of numbered notebooks NN_name.ipynb")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers to run, e.g. 1,2")
    p.add_argument("--resume", action="store_true",
                   help="continue the run folder --out with its own params: skip the notebooks it finished, and "
                        "continue GRPO from its newest checkpoint")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("params", help="validate a params file without running anything")
    p.add_argument("params")
    p.set_defaults(func=_cmd_params)
    p = sub.add_parser("import-data", help="convert released training data (VidBridge-R1 jsonl) into vvkit rows")
    p.add_argument("input", help="the released jsonl, e.g. VidBridge-R1_training_data.jsonl")
    p.add_argument("--format", required=True, choices=["vidbridge"], help="layout of the input file")
    p.add_argument("--video-root", required=True, help="folder that replaces the authors' video root")
    p.add_argument("--out", required=True, help="output jsonl of vvkit rows")
    p.add_argument("--strip-prefix", default=None,
                   help="the authors' root to replace (default: the folder prefix all videos share)")
    p.add_argument("--strict", action="store_true", help="stop at the first line that cannot be converted")
    p.set_defaults(func=_cmd_import)
    p = sub.add_parser("lmms-eval", help="score a run's policy on lmms-eval tasks, offline (in .venv-lmms)")
    p.add_argument("--tasks", required=True, help="lmms-eval tasks, comma-separated (e.g. videomme, or vvkit: the "
                                                  "run's held-out rows, exported first)")
    p.add_argument("--run", default=None, help="run folder: its frames and analysis.max_new_tokens; results go to "
                                               "<run>/eval/<policy>/lmms_eval/<tasks>/")
    p.add_argument("--policy", default="grpo", help="the run's policy name (grpo, warm_start, start, base) or a folder")
    p.add_argument("--out", default=None, help="results folder (required without --run)")
    p.add_argument("--include-path", default=None, help="folder of extra task folders (default: the run's export)")
    p.add_argument("--limit", type=int, default=None, help="at most this many docs per task (a smoke run)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="completion length (default: the run's)")
    p.add_argument("--data-root", default=None, help="lmms-eval's working folder: stock tasks' dataset_path "
                                                     "(e.g. lmms-eval/Video-MME/) resolves in it")
    p.add_argument("--hf-home", default=None, help="HF_HOME for lmms-eval: stock video tasks read "
                                                   "<hf-home>/<cache_dir>")
    p.add_argument("--python", default=None, help="interpreter with lmms-eval (default .venv-lmms/bin/python)")
    p.add_argument("--device", default=None, help="device for the model, e.g. cuda:0 (default cpu)")
    p.set_defaults(func=_cmd_lmms_eval)
    p = sub.add_parser("lmms-tasks", help="export held-out rows as lmms-eval tasks (any model, the kit's scorer)")
    p.add_argument("--run", default=None, help="run folder: its rows, reward settings, prompt style and length")
    p.add_argument("--split", default="test", help="the run's split to export (default test)")
    p.add_argument("--rows", default=None, help="a rows JSONL to export instead of the run's split")
    p.add_argument("--out", default=None, help="task folder (default <run>/lmms_tasks)")
    p.add_argument("--prefix", default="vvkit", help="task names <prefix>_<task> and the group <prefix>")
    p.set_defaults(func=_cmd_lmms_tasks)
    args = parser.parse_args(argv)
    from vvkit.config import ConfigError
    from vvkit.run import NotebookFailed

    try:
        return args.func(args)
    except (ConfigError, NotebookFailed, FileNotFoundError) as e:
        print(f"vvkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the notebook's kernel was stopped with the run (vvkit.run)
        if args.cmd == "run":
            print(f"\nvvkit: interrupted; continue with: vvkit run --out {args.out or '<run folder>'} --resume",
                  file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
