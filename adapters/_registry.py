"""Method registry: each method file registers itself; its defaults live in config/methods/<name>.yaml.

Discovery is by convention, so adding a method never edits this package's other files:
every module of `adapters/` whose name does not start with "_" is a method file and is imported;
a YAML in a methods directory may also name an outside module (`module: my_pkg.my_method`).
Extra methods directories come from the `LORABENCH_METHOD_DIRS` environment variable
(os.pathsep-separated) or `add_methods_dir()`. Such a directory is put on `sys.path` (at its end, so
it never shadows an installed package) in every process that discovers the methods, the Snakemake
jobs' scripts included: a YAML's `module:` may name a `.py` file or package that sits beside it.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import os
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METHODS_DIR = REPO_ROOT / "config" / "methods"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    layer_cls: type            # an AdaptedLayer subclass
    options_cls: type          # a dataclass; field defaults come from the method's YAML
    make_shared: Callable | None = None   # (list of (d_in, d_out), options) -> nn.Module shared by all layers
    hooks_cls: type | None = None         # TrainingHooks subclass for method-specific optimisation
    peft: dict | None = None              # a PEFT method (adapters/peft_method.py): its YAML's `peft:` block


# Full fine-tuning: no adapter, every weight of the base model trains (training's `method: null`).
# It is not a registered method and no `variants: all` selects it; a profile names it as a variant's
# method (`define_variants: {full: {method: full, train: {lr: 2.0e-5}}}`) and config/methods/full.yaml
# holds its training defaults. It takes no options.
FULL = "full"


@dataclass(frozen=True)
class FullOptions:
    """Full fine-tuning's options: none."""


_METHODS: dict[str, MethodSpec] = {}
_PEFT: dict[str, Path] = {}  # PEFT methods: name -> the YAML whose `peft:` block configures it
_EXTRA_DIRS: list[Path] = []
_discovered = False


def register(name: str, options_cls: type, *, make_shared: Callable | None = None,
             hooks_cls: type | None = None) -> Callable[[type], type]:
    """Class decorator for a method's layer: `@register("lora", LoRAOptions)`."""
    if not dataclasses.is_dataclass(options_cls):
        raise TypeError(f"{name}: options_cls must be a dataclass")

    def decorate(layer_cls: type) -> type:
        layer_cls.method = name
        _METHODS[name] = MethodSpec(name, layer_cls, options_cls, make_shared, hooks_cls)
        return layer_cls

    return decorate


def add_methods_dir(path: str | os.PathLike) -> None:
    """Make the YAMLs (and the modules they name) in `path` known; used by tests and plugins."""
    global _discovered
    _EXTRA_DIRS.append(Path(path))
    _discovered = False


def methods_dirs() -> list[Path]:
    env = [Path(p) for p in os.environ.get("LORABENCH_METHOD_DIRS", "").split(os.pathsep) if p]
    return [DEFAULT_METHODS_DIR, *env, *_EXTRA_DIRS]


def _method_yaml(name: str) -> Path | None:
    for directory in reversed(methods_dirs()):  # later directories override earlier ones
        path = directory / f"{name}.yaml"
        if path.exists():
            return path
    return None


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("adapters")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"adapters.{info.name}")
    _PEFT.clear()
    for directory in methods_dirs():
        for path in sorted(Path(directory).glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            if data.get("module"):
                _import_method_module(data["module"], path)
            if "peft" in data:
                _PEFT[path.stem] = path
    clash = sorted(set(_PEFT) & set(_METHODS))
    if clash:
        raise ValueError(f"{', '.join(clash)}: a PEFT method's YAML (peft:) has the name of a registered method; rename it")
    _discovered = True


def _import_method_module(module: str, yaml_path: Path) -> None:
    """Import the module a method YAML names, from the YAML's own directory if nowhere else."""
    directory = str(yaml_path.parent.resolve())
    if yaml_path.parent.resolve() != DEFAULT_METHODS_DIR and directory not in sys.path:
        sys.path.append(directory)
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not (module == error.name or module.startswith(error.name + ".")):
            raise  # the method module itself imports something that is not installed
        raise ModuleNotFoundError(
            f"{yaml_path}: module: {module} is not importable ({error}); put {module.replace('.', '/')}.py "
            f"(or the package) in {directory}, or install it", name=error.name) from None


def available() -> list[str]:
    """Names of the registered methods."""
    _discover()
    return sorted(_METHODS)


def peft_methods() -> list[str]:
    """Names of the methods whose YAML holds a PEFT config (`peft:`) instead of naming a method file."""
    _discover()
    return sorted(_PEFT)


def get_spec(name: str) -> MethodSpec:
    _discover()
    if name in _PEFT:
        from .peft_method import PeftHooks
        return MethodSpec(name, layer_cls=None, options_cls=dict, hooks_cls=PeftHooks,
                          peft=method_config(name)["peft"] or {})
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(_METHODS))}. "
                         f"A new method needs adapters/<name>.py (registering itself) and config/methods/<name>.yaml")
    return _METHODS[name]


def method_config(name: str) -> dict[str, Any]:
    """The method's whole YAML (options plus training defaults such as learning rate)."""
    spec_path = _method_yaml(name)
    if spec_path is None:
        dirs = ", ".join(str(d) for d in methods_dirs())
        raise ValueError(f"method {name!r} has no defaults file: create {name}.yaml in one of: {dirs}")
    return copy.deepcopy(_read_yaml(str(spec_path), spec_path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=None)
def _read_yaml(path: str, mtime_ns: int) -> dict[str, Any]:
    """A method YAML, parsed once per version of the file (planning a DAG asks hundreds of times)."""
    return yaml.safe_load(Path(path).read_text()) or {}


def resolve_options(name: str, overrides: dict[str, Any]) -> Any:
    """YAML defaults + `overrides` -> the method's options dataclass, with errors that name the fix."""
    if name == FULL:
        if overrides:
            raise ValueError(f"method {FULL!r} (full fine-tuning) takes no options, got {sorted(overrides)}")
        return FullOptions()
    spec = get_spec(name)
    if spec.peft is not None:  # the PEFT config class checks the keys and values
        from .peft_method import resolve_config
        return resolve_config(name, spec.peft, overrides)
    fields = {f.name for f in dataclasses.fields(spec.options_cls)}
    for key in overrides:
        if key in fields:
            continue
        owners = [m for m, s in sorted(_METHODS.items())
                  if m != name and key in {f.name for f in dataclasses.fields(s.options_cls)}]
        if owners:
            raise ValueError(f"option {key!r} belongs to method {' / '.join(owners)}, not {name!r}; "
                             f"{name} takes: {', '.join(sorted(fields))}")
        raise ValueError(f"unknown option {key!r} for method {name!r}; it takes: {', '.join(sorted(fields))}")
    defaults = method_config(name).get("options") or {}
    stray = set(defaults) - fields
    if stray:
        raise ValueError(f"config for {name!r} has options the method does not take: {sorted(stray)}")
    values = {**defaults, **overrides}
    missing = fields - set(values) - {f.name for f in dataclasses.fields(spec.options_cls)
                                      if f.default is not dataclasses.MISSING
                                      or f.default_factory is not dataclasses.MISSING}
    if missing:
        raise ValueError(f"method {name!r}: no value for {sorted(missing)}; "
                         f"set it in config/methods/{name}.yaml under options: or pass it to apply()")
    return spec.options_cls(**values)


def variants(include_peft: bool = False, check_peft: bool = True) -> dict[str, dict[str, Any]]:
    """Every runnable variant: {name: {"method", "options", "train"}}.

    A method's YAML may list `variants:` (name -> option overrides, optionally with a `train:`
    block of training overrides); a method without that list is one variant named after it.
    The Snakemake DAG runs variants, so a new method's YAML alone adds its runs.
    PEFT methods' variants (`include_peft`) are opt-in: a profile names them, `variants: all` skips them.
    `check_peft=False` leaves their options unchecked (checking imports peft, seconds): the caller
    checks the ones it uses with `resolve_options`.
    """
    found: dict[str, dict[str, Any]] = {}
    for method in available() + (peft_methods() if include_peft else []):
        listed = method_config(method).get("variants") or {method: {}}
        for name, overrides in listed.items():
            overrides = dict(overrides or {})
            train = overrides.pop("train", {}) or {}
            if name in found:
                raise ValueError(f"variant {name!r} is defined twice ({found[name]['method']} and {method}); rename one")
            if check_peft or method not in _PEFT:
                resolve_options(method, overrides)  # fail early on a bad variant
            found[name] = {"method": method, "options": overrides, "train": train}
    return found
