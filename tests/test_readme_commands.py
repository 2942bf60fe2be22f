"""Every `snakemake` command line the README shows is planned here, as written, offline.

The command lines come out of the README's ```bash blocks (a `.venv/bin/` prefix and a trailing
comment dropped) and are dry-run (`-n`, every job planned whatever results/ holds). The SLURM line
is planned with `--executor local`: the executor plugin is not installed in CI, and the profile's
own keys are checked in tests/test_profiles.py. A command whose profile has a published run plans
as many jobs as that run's Snakemake log counted (provenance.json `timing.jobs`), so the README's
"132 jobs" and the DAG it describes cannot drift apart unnoticed.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from test_profiles import DRY, _job_stats, _run_dry

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_commands() -> dict[str, list[str]]:
    """{the command as written: its arguments after `snakemake`} for each snakemake line of a bash block."""
    found, in_bash = {}, False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash" if not in_bash else False
            continue
        command = line.split("#", 1)[0].strip()
        if in_bash and re.match(r"^(\.venv/bin/)?snakemake\b", command):
            found[command] = shlex.split(command)[1:]
        elif in_bash and "&& .venv/bin/snakemake" in command:   # ./setup.sh && .venv/bin/snakemake --cores all
            found[command] = shlex.split(command.split("&&", 1)[1])[1:]
    return found


COMMANDS = readme_commands()
# profile → its published folder (the job count its run logged)
# (config/zoo.yaml is not here: its published run was completed by two later invocations after its
# grids were widened, so its first log counts fewer jobs than the profile now plans; README says so.)
PUBLISHED = {"config/replication.yaml": "replication", "config/real.yaml": "real",
             "config/real_forgetting.yaml": "real_forgetting", None: "tiny"}


def _dry_args(args: list[str]) -> list[str]:
    args = [a if a != "all" else "2" for a in args]          # --cores all: the plan does not depend on it
    if "--workflow-profile" in args:
        args += ["--executor", "local"]
    return [*args, *DRY, "--quiet", "rules"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    jobs = {f"cmd{i}": _dry_args(args) for i, args in enumerate(COMMANDS.values())}
    return dict(zip(COMMANDS, _run_dry(jobs, tmp_path_factory.mktemp("readme_commands")).values()))


def test_the_readme_shows_the_commands_a_user_runs():
    profiles = [a for args in COMMANDS.values() for a in args if a.endswith(".yaml")]
    assert any(args == ["--cores", "all"] for args in COMMANDS.values()), "the Quick start's DAG"
    for wanted in ("config/replication.yaml", "config/real.yaml", "config/real_forgetting.yaml", "config/zoo.yaml",
                   "config/paper/mora.yaml", "config/paper/sora.yaml"):
        assert wanted in profiles, wanted


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_readme_command_plans(command, planned):
    run = planned[command]
    assert run.returncode == 0, f"{command}:\n{run.output[-3000:]}"
    stats = _job_stats(run.output)
    assert sum(stats.values()) > 0, f"{command}: planned no job"
    args = COMMANDS[command]
    files = [a for a in args if a.endswith(".yaml")]
    folder = PUBLISHED.get(files[0] if files else None) if args[:1] != ["download"] else None
    if folder:
        logged = json.loads((ROOT / "results" / "published" / folder / "provenance.json").read_text())["timing"]["jobs"]
        assert sum(stats.values()) == logged, (f"{command}: plans {sum(stats.values())} jobs, the published "
                                               f"run of this profile ran {logged}")
