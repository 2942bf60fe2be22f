"""Which of the papers' models a run's base model is (reference/models.yaml).

    paper_model("meta-llama/Llama-2-7b-hf", profile="mora")   # "LLaMA-2-7B"
    paper_model("/data/tiny-llama", profile="mora")            # "LLaMA-2-7B" (the profile's model)
    same_model("LLaMA-2-7B", "LLaMA2-7B")                     # True: the two papers spell it differently
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import yaml

MODELS_FILE = Path(__file__).resolve().parent / "reference" / "models.yaml"
HF_CACHE_DIR = re.compile(r"models--([^/]+)--([^/]+)")


def model_key(name: str) -> str:
    """A model name without case, spaces, hyphens or dots: LLaMA-2-7B and LLaMA2-7B are one model."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def same_model(a: str, b: str) -> bool:
    return bool(a) and bool(b) and model_key(a) == model_key(b)


@lru_cache(maxsize=None)
def load_models(path: str | Path = MODELS_FILE) -> tuple[dict[str, str], dict[str, str]]:
    """({hub id or its last part, lowercased: papers.csv model}, {profile: papers.csv model})."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(data) - {"hub", "profiles"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; expected 'hub' and 'profiles'")
    hub = {}
    for model, ids in (data.get("hub") or {}).items():
        for hub_id in ids:
            hub[hub_id.lower()] = model
            hub.setdefault(hub_id.lower().rsplit("/", 1)[-1], model)  # a local copy named like the repo
    return hub, dict(data.get("profiles") or {})


def recognise(base_model: str) -> str | None:
    """The papers.csv model of a Hub id or local path, or None when the name does not say."""
    hub, _ = load_models()
    text = str(base_model or "").strip().rstrip("/")
    if not text:
        return None
    cache = HF_CACHE_DIR.search(text)
    candidates = [f"{cache.group(1)}/{cache.group(2)}"] if cache else []
    candidates += [text, text.rsplit("/", 1)[-1]]
    return next((hub[c.lower()] for c in candidates if c.lower() in hub), None)


def paper_model(base_model: str, profile: str = "", declared: str | None = None) -> str | None:
    """The papers.csv model a run is compared with: the recognised base model, else the declared
    one (`--paper-model`), else the profile's (models.yaml `profiles`); None when none says."""
    _, profiles = load_models()
    return recognise(base_model) or declared or profiles.get(profile)


def describe_base_model(path: str) -> str:
    """What a run's base model is, for table captions: a converted GGUF's label and origin
    (training/gguf.py's provenance.json), the DAG's own pretrained tiny model, or the Hub id / path."""
    folder = Path(str(path))
    try:
        info = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return str(path)
    if info.get("wheel"):
        return (f"{info.get('label', folder.name)} from the wheel {info['wheel']}=={info.get('wheel_version')} "
                f"({Path(info.get('file', '')).name}, sha256 {str(info.get('sha256', ''))[:12]}…)")
    if (info.get("config") or {}).get("model_init") == "random":
        try:
            params = json.loads((folder / "train_summary.json").read_text()).get("model_params")
        except (OSError, ValueError):
            params = None
        size = f"{params / 1e6:.1f}M-parameter " if params else ""
        return f"the profile's own {size}LLaMA, pretrained by the DAG on its generated corpus ({path})"
    return str(path)


def base_model_note(base_models) -> str:
    """`Base model: …` for the distinct base models of a set of runs ('' when none is known)."""
    paths = sorted({str(p) for p in base_models if isinstance(p, str) and p})
    return ("Base model: " + "; ".join(describe_base_model(p) for p in paths) + ".") if paths else ""
