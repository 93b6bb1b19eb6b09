"""Hard-link one environment's PyTorch into another, so the side environments (.venv-vllm, .venv-lmms) do not each
unpack their own 5.4 GB of torch, triton and CUDA libraries (`make vllm-env`, `make lmms-env`).

Run with the source environment's interpreter:  .venv/bin/python tools/link_torch.py .venv-vllm

Every file a distribution's RECORD lists is linked into the target's site-packages, dist-info included, so the
target's pip sees the same torch installed and only adds what is missing. Removing or upgrading a package in the
target unlinks its own entries and never touches the source. Console scripts (torchrun) are written afresh with the
target's interpreter. Where the two folders are on different file systems the files are copied, and it says so.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

SHARED = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")


def shared_distributions() -> list[metadata.Distribution]:
    """torch, torchvision, triton and the CUDA wheels torch pulls in, as installed here."""
    dists = {}
    for d in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
        if SHARED.match(name):
            dists[name] = d
    if "torch" not in dists:
        sys.exit(f"link_torch: no torch installed in {sys.prefix}; build that environment first (make install)")
    return [dists[k] for k in sorted(dists)]


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def link_into(dists: list[metadata.Distribution], src: Path, dst: Path, dst_python: Path) -> tuple[int, int]:
    """Link (or copy) every recorded file; rewrite scripts outside site-packages with the target's interpreter."""
    linked = copied = 0
    for dist in dists:
        for rel in dist.files or []:
            source = (src / rel).resolve()
            if not source.is_file():                       # __pycache__ entries that were never compiled
                continue
            if rel.parts[0] == "..":                       # bin/torchrun and friends
                target = dst_python.parent / source.name
                lines = source.read_text().splitlines(keepends=True)
                if lines and lines[0].startswith("#!"):
                    lines[0] = f"#!{dst_python}\n"
                target.write_text("".join(lines))
                target.chmod(0o755)
                continue
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.unlink()
            try:
                os.link(source, target)
                linked += 1
            except OSError:
                shutil.copy2(source, target)
                copied += 1
    return linked, copied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("venv", type=Path, help="the target environment (its bin/python must exist)")
    args = ap.parse_args()
    dst_python = args.venv.absolute() / "bin" / "python"
    if not dst_python.exists():
        sys.exit(f"link_torch: {dst_python} does not exist; create it first (python -m venv {args.venv})")
    src = Path(sysconfig.get_paths()["purelib"])
    dists = shared_distributions()
    linked, copied = link_into(dists, src, site_packages(dst_python), dst_python)
    cuda = [d for d in dists if d.metadata["Name"].lower().startswith(("nvidia", "cuda"))]
    names = ", ".join(f"{d.metadata['Name']} {d.version}" for d in dists if d not in cuda)
    print(f"link_torch: {names} and {len(cuda)} CUDA wheels into {args.venv}: "
          f"{linked} files linked" + (f", {copied} copied (different file systems: no space saved)" if copied else ""))


if __name__ == "__main__":
    main()
