# Stage 5 — aggregation: tidy results, tables per family, paper-vs-ours tables, plots and the
# replication verdicts (analysis/). Stage 6 — the HTML report: the outputs below marked report()
# carry captions (workflow/report/*.rst) and categories; rule report renders them into report.html.


rule aggregate:
    input:
        run_outputs(),
        sweep_outputs(),  # the lr sweep's choices: tables/lr_sweep.*, plots/lr_sweep.*
    output:
        tables=report(directory(f"{RESULTS}/tables"), patterns=["{name}.csv"],
                      caption="../report/tables.rst", category="Tables"),
        plots=report(directory(f"{RESULTS}/plots"), patterns=["{name}.png"],
                     caption="../report/plots.rst", category="Plots"),
        replication=report(f"{RESULTS}/replication.md", caption="../report/replication.rst",
                           category="Replication"),
        verdicts=f"{RESULTS}/replication.json",
    params:
        base_model=lambda wc: base_model_path(),
        model_name=config["base_model"]["name"],  # which model a local path is, for the paper tables
        verdicts=config["verdicts"],
    log:
        f"{RESULTS}/logs/aggregate.log",
    # the last job but the report: its spectra (a process per run's ΔW at a time, 16 s a run for a
    # 135M model) use the cores the runs have left; Snakemake lowers 8 to --cores where that is less
    threads: 8
    conda:
        ENV
    script:
        "../scripts/analyze.py"


rule report:
    input:
        rules.aggregate.output,
    output:
        f"{RESULTS}/report.html",
    params:
        snakefile=workflow.main_snakefile,
    log:
        f"{RESULTS}/logs/report.log",
    threads: 1
    conda:
        ENV
    script:
        "../scripts/render_report.py"
