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
# Loaded on first use: `import analysis.settings` (the DAG's planning) needs neither pandas' plots nor scipy.
_WHERE = {
    "collect_curves": "collect",
    "read_runs": "collect",
    "write_runs": "collect",
    "run_analysis": "pipeline",
    "pareto_front": "plots",
    "write_plots": "plots",
    "load_mapping": "reference",
    "load_reference": "reference",
    "write_paper_tables": "reference",
    "Tolerance": "settings",
    "VerdictSettings": "settings",
    "difference": "stats",
    "format_summary": "stats",
    "summarize": "stats",
    "aggregate": "tables",
    "write_family_tables": "tables",
    "decide_claims": "verdicts",
    "write_replication": "verdicts",
}

__all__ = [
    "Tolerance", "VerdictSettings", "aggregate", "collect_curves", "decide_claims", "difference", "format_summary",
    "load_mapping", "load_reference", "pareto_front", "read_runs", "run_analysis", "summarize",
    "write_family_tables", "write_paper_tables", "write_plots", "write_replication", "write_runs",
]


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
