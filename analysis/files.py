"""Atomic writes: a temp file beside the target, then one rename, so a killed job never leaves a
half-written table that Snakemake would take as done."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = _temp_beside(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame) -> Path:
    return write_text(path, frame.to_csv(index=False))


def save_figure(fig, stem: str | os.PathLike) -> list[Path]:
    """`stem`.png and `stem`.pdf; returns both paths."""
    paths = []
    for fmt in ("png", "pdf"):
        path = Path(f"{stem}.{fmt}")
        tmp = _temp_beside(path)
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def read_json(path: Path) -> dict | None:
    """The file's JSON object, or None when it is missing; a broken file raises ValueError."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
