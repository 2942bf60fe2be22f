"""python -m analysis --results results/<profile> [--out DIR]: collect → tables → plots → verdicts."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .pipeline import run_analysis
from .settings import VerdictSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Turn a profile's run directories into tables (tables/*.csv|md|tex, incl. runs.csv and "
                    "paper-vs-ours), plots (plots/*.png|pdf) and the claims' verdicts (replication.md|json).")
    parser.add_argument("--results", required=True, type=Path, help="results/<profile> (holds runs/ and base_eval/)")
    parser.add_argument("--out", type=Path, help="where tables/, plots/ and replication.* go (default: --results)")
    parser.add_argument("--base-model", help="base model path for ΔW spectra and the init check "
                                             "(default: the adapter's recorded base model, or <results>/base_model)")
    parser.add_argument("--no-spectra", action="store_true", help="skip the measurements that load models")
    parser.add_argument("--compare", choices=["auto", "values", "shape"], default="auto",
                        help="paper tables: compare numbers (values), method order only (shape), or decide by "
                             "profile name (auto: values when the profile is named after the paper)")
    parser.add_argument("--paper-model", help="the papers.csv model the runs are compared with when their base "
                                              "model path does not say (e.g. LLaMA-2-7B for a local copy); "
                                              "default: none, and such runs are not compared with the paper's "
                                              "numbers (the paper tables show the method order only)")
    parser.add_argument("--verdict-settings", type=json.loads, default={}, metavar="JSON",
                        help='overrides of analysis.settings.VerdictSettings, e.g. \'{"large_rank_from": 32}\'')
    parser.add_argument("--workers", type=int, default=1,
                        help="processes (one torch thread each) that measure the runs' spectra; fewer where "
                             "the free memory does not hold that many copies of the base model (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: give 1 or more")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = run_analysis(args.results, args.out or args.results, base_model=args.base_model,
                           spectra=not args.no_spectra, compare=None if args.compare == "auto" else args.compare,
                           settings=VerdictSettings.from_dict(args.verdict_settings), paper_model=args.paper_model,
                           workers=args.workers)
    for kind, paths in written.items():
        print(f"{kind}: {len(paths)} file(s)" + (f", e.g. {paths[0]}" if paths else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
