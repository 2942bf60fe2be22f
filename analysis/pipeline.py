"""The whole analysis of one results folder, as the CLI and the workflow run it."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from . import headline, leaderboard, plots, reference, sweep, tables, verdicts
from .collect import collect, collect_curves, selection_overlap
from .paper_models import base_model_note
from .files import write_csv

log = logging.getLogger(__name__)


def run_analysis(results_dir: str | Path, out_dir: str | Path, base_model: str | Path | None = None,
                 spectra: bool = True, compare: str | None = None,
                 settings: verdicts.VerdictSettings | None = None,
                 paper_model: str | None = None, workers: int = 1) -> dict[str, list[Path]]:
    """collect → (spectra) → tables → paper tables → plots → lr sweep → verdicts → headline; returns {kind: paths written}.
    `workers`: processes that measure the runs' spectra (spectra.measure_runs)."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    runs, curves = collect(results_dir), collect_curves(results_dir)
    spectrum_curves = pd.DataFrame()
    if spectra and len(runs):
        from .spectra import measure_runs  # torch + transformers: only when measuring

        measured, spectrum_curves, notes = measure_runs(runs, base_model, results_dir, workers=workers)
        for note in notes:
            log.warning("spectra: %s", note)
        runs = pd.concat([runs, measured], ignore_index=True) if len(measured) else runs
    tables_dir = out_dir / "tables"
    written = {"runs": [write_csv(tables_dir / "runs.csv", runs), write_csv(tables_dir / "train_curves.csv", curves)]}
    if len(spectrum_curves):
        written["runs"].append(write_csv(tables_dir / "spectra.csv", spectrum_curves))
    summary = tables.aggregate(runs)
    family_tables = tables.write_family_tables(runs, out_dir, summary=summary)
    written["tables"] = [p for paths in family_tables.values() for p in paths]
    paper_tables = reference.write_paper_tables(runs, out_dir, compare, paper_model_name=paper_model,
                                                 overlap=selection_overlap(results_dir))
    written["paper tables"] = [p for paths in paper_tables.values() for p in paths]
    figures = plots.write_plots(runs, curves, spectrum_curves, out_dir)
    written["plots"] = [p for paths in figures.values() for p in paths]
    written["lr sweep"] = sweep.write_sweep(results_dir, out_dir)  # [] without a sweep/ folder
    decided = verdicts.decide_claims(runs, settings)
    written["verdicts"] = verdicts.write_replication(decided, out_dir, results_dir.name, settings,
                                                     extra=sweep.learning_rates_markdown(results_dir),
                                                     model_note=base_model_note(runs.get("base_model", [])))
    written["leaderboard"] = leaderboard.write_leaderboard(runs, summary, out_dir, results_dir.name)
    written["headline"] = headline.write_headline(runs, summary, decided, out_dir, results_dir.name,
                                                  base_model_note(runs.get("base_model", [])))
    return written
