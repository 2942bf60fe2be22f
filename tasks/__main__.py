"""Write a task's splits as JSONL.

    python -m tasks --task math --source tiny --seed 0 --out data/math [--sizes train=500,test=100]
    python -m tasks --task sst2 --source paper --data-dir /data/glue --out data/sst2
    python -m tasks --task cpt_general --source paper --option domain.data_files=/data/pubmed.jsonl --out DIR
    python -m tasks --list
"""
from __future__ import annotations

import argparse
import json
import sys

from tasks import records, registry


def parse_sizes(text: str) -> dict[str, int]:
    sizes = {}
    for part in filter(None, text.split(",")):
        split, _, n = part.partition("=")
        if not n.strip().isdigit():
            raise argparse.ArgumentTypeError(f"bad size {part!r}: write split=N, e.g. train=500,test=100")
        sizes[split.strip()] = int(n)
    return sizes


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (numbers, true, lists), else as text;
    dotted keys nest (domain.data_dir=... -> {"domain": {"data_dir": ...}})."""
    cfg: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"bad --option {pair!r}: write KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = cfg
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks", description="Write a lorabench task's "
                                     "train/validation/test.jsonl (tiny generator or the papers' data).")
    parser.add_argument("--task", help=f"one of: {', '.join(registry.available())}")
    parser.add_argument("--source", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--seed", type=int, default=0, help="tiny generator seed (default 0)")
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="tiny split sizes, e.g. train=500,validation=50,test=100 (others keep defaults)")
    parser.add_argument("--data-dir", help="paper source: local files in the Hub dataset's schema "
                        "(<split>.jsonl/.parquet, or the Hub parquet layout) instead of downloading")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="paper loader option, repeatable (hub_id=..., data_files=..., dataset=alpaca_cleaned, "
                             "domain.data_dir=...)")
    parser.add_argument("--out", help="directory for train/validation/test.jsonl")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for family, names in registry.families().items():
            for name in names:
                spec = registry.get(name)
                sizes = "/".join(str(spec.default_sizes[s]) for s in ("train", "validation", "test"))
                print(f"{family:22s} {name:14s} {spec.kind:15s} {sizes:13s} {spec.description}")
        return 0
    if not args.task or not args.out:
        parser.error("--task and --out are required (or --list)")
    try:
        spec = registry.get(args.task)
        if args.source == "tiny":
            splits = spec.generate_tiny(args.seed, args.sizes)
        else:
            cfg = parse_options(args.option)
            if args.data_dir:
                cfg["data_dir"] = args.data_dir
            splits = spec.load_paper(**cfg)
        paths = records.write_splits(splits, args.out, task=spec)
    except (ValueError, TypeError) as err:
        parser.exit(2, f"python -m tasks: error: {err}\n")
    for split, path in paths.items():
        print(f"{path}\t{len(splits[split])} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
