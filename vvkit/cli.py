"""`vvkit` command line: `vvkit run` (the headless study), `vvkit params` (check a params file)."""
from __future__ import annotations

import argparse
import sys
import time


def _cmd_run(args: argparse.Namespace) -> int:
    from vvkit.run import run_study, summarize

    only = [int(x) for x in args.only.split(",")] if args.only else None
    t0 = time.time()
    run_dir = run_study(args.params, out=args.out, notebooks_dir=args.notebooks, only=only, resume=args.resume)
    print(f"\n[vvkit] study finished in {time.time() - t0:.0f} s")
    print(summarize(run_dir))
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from vvkit.config import load_params

    params = load_params(args.params)
    print(f"{args.params}: ok ({', '.join(params)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vvkit", description="Reinforcement-learned video reasoning kit.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the numbered notebooks headless into a run folder")
    p.add_argument("--params", default="params/default.yaml", help="params preset (YAML), default params/default.yaml")
    p.add_argument("--out", default=None, help="run folder (default runs/<name>__seed<seed>__<time>)")
    p.add_argument("--notebooks", default="notebooks", help="folder of numbered notebooks NN_name.ipynb")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers to run, e.g. 1,2")
    p.add_argument("--resume", action="store_true", help="skip notebooks already finished in --out")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("params", help="validate a params file without running anything")
    p.add_argument("params")
    p.set_defaults(func=_cmd_params)
    args = parser.parse_args(argv)
    from vvkit.config import ConfigError
    from vvkit.run import NotebookFailed

    try:
        return args.func(args)
    except (ConfigError, NotebookFailed, FileNotFoundError) as e:
        print(f"vvkit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
