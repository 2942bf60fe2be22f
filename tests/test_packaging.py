"""The two install paths (setup.sh via pyproject.toml, conda via environment.yml) pin the same versions."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_pins_match_pyproject():
    pyproject = set(re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', (ROOT / "pyproject.toml").read_text()))
    conda = set(re.findall(r"- ([A-Za-z0-9_.-]+==\S+)", (ROOT / "environment.yml").read_text()))
    assert pyproject == conda
    assert "torch==2.13.0" in pyproject
    assert all("==" in spec for spec in pyproject)  # exact pins only
