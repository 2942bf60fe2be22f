"""From run directories to tables, plots and verdicts.

    from analysis import decide_claims, write_family_tables, write_paper_tables
    from analysis.collect import collect
    runs = collect("results/tiny")                 # tidy: one row per run × metric (tables/runs.csv)
    write_family_tables(runs, "results/tiny")      # tables/<family>.{csv,md,tex}
    write_paper_tables(runs, "results/tiny")       # tables/paper_<paper>_<table>.{csv,md,tex}
    decide_claims(runs)                            # the five claims of docs/papers.md

or all of it: `python -m analysis --results results/<profile>` (analysis.pipeline.run_analysis).
Modules: collect (run dirs → tidy table), stats (CIs, differences, decisions), tables, reference
(published numbers + paper-vs-ours), spectra (ΔW singular values), plots, verdicts, settings
(task/metric assumptions and the verdicts' tolerances). `analysis.spectra` loads torch and
the adapters, so it is imported only when spectra are measured.
"""
from .collect import collect_curves, read_runs, write_runs
from .pipeline import run_analysis
from .plots import pareto_front, write_plots
from .reference import load_mapping, load_reference, write_paper_tables
from .settings import Tolerance, VerdictSettings
from .stats import difference, format_summary, summarize
from .tables import aggregate, write_family_tables
from .verdicts import decide_claims, write_replication

__all__ = [
    "Tolerance", "VerdictSettings", "aggregate", "collect_curves", "decide_claims", "difference", "format_summary",
    "load_mapping", "load_reference", "pareto_front", "read_runs", "run_analysis", "summarize",
    "write_family_tables", "write_paper_tables", "write_plots", "write_replication", "write_runs",
]
