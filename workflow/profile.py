"""How a run's config is put together: profiles stand on their own.

`snakemake` with no `--configfile` runs the tiny profile (config/config.yaml). With
`--configfile A.yaml [B.yaml ...]` the workflow sees only those files (merged in order, then
`--config`): no setting of the tiny profile reaches a paper profile. A profile that is meant to
build on another says so with `extends: <file>` (the replication and test profiles extend the tiny
one); the chain is resolved here, the named file first, the profile on top. The schema's defaults
fill the rest (workflow/schemas/config.schema.yaml).

    config = resolve_profile(config, configfiles)   # what the Snakefile and the tests use
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = "config/config.yaml"
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")
# data.paper options that are names, never numbers (a revision hash can be all digits).
_NAME_KEYS = {"hub_id", "subset", "split", "revision", "data_files", "data_dir", "text_column", "dataset", "cache_dir"}


def merge(base: dict, update: dict) -> dict:
    """Deep merge as Snakemake does: mappings merge key by key, everything else is replaced."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def _load(path: str | Path) -> dict:
    full = Path(path) if Path(path).is_absolute() else ROOT / path
    if not full.is_file():
        raise ValueError(f"config: `extends: {path}` names no file (looked for {full}); fix the path")
    data = yaml.safe_load(full.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{full}: a profile is a YAML mapping at the top level")
    return data


def _extends_chain(config: dict) -> dict:
    """The profile under its `extends:` chain: the base first, the profile's own keys on top."""
    seen, chain, current = [], [config], config
    while current.get("extends"):
        name = current["extends"]
        if name in seen:
            raise ValueError(f"config: `extends:` loops through {' -> '.join(seen + [name])}")
        seen.append(name)
        current = _load(name)
        chain.append(current)
    resolved: dict = {}
    for layer in reversed(chain):
        merge(resolved, {k: v for k, v in layer.items() if k != "extends"})
    return resolved


def _numbers_in_paper_options(options, where: str):
    """`--config` nests values as strings ("20"); the paper loaders' numeric options want numbers."""
    if isinstance(options, dict):
        return {k: v if k in _NAME_KEYS else _numbers_in_paper_options(v, f"{where}.{k}") for k, v in options.items()}
    if isinstance(options, list):
        return [_numbers_in_paper_options(v, where) for v in options]
    if isinstance(options, str) and _NUMBER.match(options.strip()):
        number = float(options)
        return int(number) if number.is_integer() and re.match(r"^[+-]?\d+$", options.strip()) else number
    return options


def resolve_profile(config: dict, configfiles=()) -> dict:
    """The complete profile config, in place of `config` (returned too).

    `configfiles` are the `--configfile` paths; none means the tiny profile is the default."""
    resolved = dict(config)
    if not configfiles:
        resolved = merge(_load(TINY), resolved)
    resolved = _extends_chain(resolved)
    paper = resolved.get("data", {}).get("paper")
    if isinstance(paper, dict):
        resolved["data"]["paper"] = _numbers_in_paper_options(paper, "data.paper")
    config.clear()
    config.update(resolved)
    return config
