"""The three descriptions of the environment (requirements.txt, pyproject.toml, environment.yml) agree."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[=<>!\[ ]", line)[0].lower()
            out[name] = line.replace(" ", "")
    return out


def test_pyproject_and_requirements_pin_the_same_packages():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = _pins(proj["dependencies"] + proj["optional-dependencies"]["test"])
    assert deps == req
    assert req["torch"] == "torch==2.13.0"
    assert not {"torchvision", "torchcodec", "qwen-vl-utils"} & set(req)


def test_environment_yml_installs_requirements_with_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip[0] == "torch==2.13.0" and "-r requirements.txt" in pip
