"""Which of the papers' models a run's base model is (reference/models.yaml).

    paper_model("meta-llama/Llama-2-7b-hf")                    # "LLaMA-2-7B"
    paper_model("/data/my-llama")                              # None: a local path that does not say
    paper_model("/data/my-llama", declared="LLaMA-2-7B")       # "LLaMA-2-7B" (base_model.name / --paper-model)
    same_model("LLaMA-2-7B", "LLaMA2-7B")                     # True: the two papers spell it differently

A base model nothing names as a paper's model is never compared with the paper's numbers: a user's
own local model is not the paper's model just because it runs in the paper's profile.
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


def paper_model(base_model: str, declared: str | None = None) -> str | None:
    """The papers.csv model a run is compared with: the recognised base model (a Hub id of
    models.yaml, a Hub cache folder or a local copy named like the repo), else the declared one
    (`base_model.name` / `--paper-model`); None when neither says, and then nothing is compared."""
    return recognise(base_model) or declared or None


def profile_hub_id(profile: str) -> str | None:
    """The Hub id of the model a profile reproduces (models.yaml `profiles`), for the hint in
    `not_compared_note`; None for a profile that reproduces no paper's model."""
    model = load_models()[1].get(profile)
    hub = (yaml.safe_load(MODELS_FILE.read_text()) or {}).get("hub") or {}
    return next(iter(hub.get(model) or []), None) if model else None


def not_compared_note(base_models, profile: str = "") -> str:
    """Why a paper table compares no number: the runs' base model is not one of the papers' models."""
    paths = sorted({str(p) for p in base_models if isinstance(p, str) and p}) or ["(not recorded)"]
    hub_id = profile_hub_id(profile)
    how = f"`base_model.name: {hub_id}`" if hub_id else "`base_model.name: <its Hub id>`"
    return (f"Not compared with the paper's numbers: base model {'; '.join(paths)} is not a paper model "
            f"(analysis/reference/models.yaml). If it is a copy of one, set {how} in the profile "
            "(or `python -m analysis --paper-model`) to compare.")


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
