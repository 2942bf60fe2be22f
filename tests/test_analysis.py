"""analysis/: the tidy table, across-seed statistics, tables, paper reference data and plots, on a
synthetic results folder (tests/test_analysis_data.py) whose numbers are checked by hand."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis import collect, reference, settings, stats, tables
from analysis.values import primary_values
from analysis.plots import pareto_front, plot_spectra, write_plots
from test_analysis_data import build_results, row, write_run

T_975_DF2 = 4.302652729911275  # Student t 97.5% quantile, 2 degrees of freedom (tables)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return build_results(tmp_path_factory.mktemp("results") / "tiny")


@pytest.fixture(scope="module")
def runs(results):
    return collect.collect(results)


def one(frame, **where):
    for column, value in where.items():
        frame = frame[frame[column] == value]
    assert len(frame) == 1, f"{len(frame)} rows for {where}"
    return frame.iloc[0]


# --- collect -----------------------------------------------------------------------------------
def test_tidy_rows_one_per_run_and_metric(runs):
    assert list(runs.columns) == collect.COLUMNS
    lora0 = runs[(runs["train_task"] == "sst2") & (runs["variant"] == "lora") & (runs["seed"] == 0)]
    # acc from eval.json (stderr "N/A" and alias dropped, ",none" stripped) + final_loss from the summary
    assert sorted(lora0["metric_id"]) == ["acc", "final_loss"]
    acc = one(lora0, metric="acc")
    assert (acc["value"], acc["source"], acc["filter"], acc["family"], acc["trainable_params"]) == \
        (0.80, "lorabench_sst2", "none", "glue", 1000)
    assert (acc["method"], acc["role"], acc["r"], acc["status"], acc["wall_time_s"]) == ("lora", "lora", 8, "ok", 10.0)
    # 3 lora + 2 vera + 1 sora evaluated, each with acc and final_loss; 2 failed runs with one empty row each
    sst2 = runs[runs["train_task"] == "sst2"]
    assert len(sst2[sst2["variant"] != "base"]) == 6 * 2 + 2 + 2  # + sora's live_rank_start / live_rank_final


def test_failed_and_diverged_runs_keep_a_row_with_their_reason(runs):
    diverged = one(runs, train_task="sst2", variant="sora", seed=1)
    assert diverged["status"] == "diverged" and diverged["reason"] == "loss is nan at step 12"
    assert math.isnan(diverged["value"]) and diverged["metric"] == ""
    failed = one(runs, train_task="sst2", variant="mora1")
    assert (failed["status"], failed["reason"], failed["method"]) == ("failed", "OutOfMemoryError: CUDA", "mora")


def test_a_collapsed_run_is_ok_with_a_note(tmp_path):
    """A run stuck at the uniform-output loss (training.trainer's `collapsed`) is shown, not hidden."""
    write_run(tmp_path, "sst2", "lora", 0, results={"lorabench_sst2": {"acc,none": 0.5}},
              summary_extra={"collapsed": True, "collapse": "final loss 0.693 ≥ ln 2 (uniform output)"})
    write_run(tmp_path, "sst2", "mora6", 0, results={"lorabench_sst2": {"acc,none": 0.9}})
    runs = collect.collect(tmp_path).drop_duplicates("variant").set_index("variant")
    assert runs.loc["lora", "status"] == "ok" and runs.loc["lora", "reason"].startswith("collapsed: final loss 0.693")
    assert runs.loc["mora6", "reason"] == ""


def test_steps_probes_base_and_sora_ranks(runs):
    uuid = runs[(runs["variant"] == "mora6") & (runs["seed"] == 1) & (runs["metric"] == "char_acc")]
    assert dict(zip(uuid["step"], uuid["value"])) == {10: 0.32, 20: 0.62, 30: 0.92}
    assert one(uuid, step=30)["final"] and not one(uuid, step=10)["final"]
    # a probe evaluated on the cpt_domain run is its own task, trained on cpt_domain
    general = one(runs, task="cpt_general", variant="pissa", seed=0)
    assert (general["train_task"], general["metric_id"], general["value"]) == ("cpt_domain", "word_perplexity", 30.0)
    assert general["role"] == "pissa" and general["method"] == "milora"
    base = one(runs, task="sst2", variant="base")
    assert base["status"] == "ok" and base["reason"] == "" and pd.isna(base["seed"]) and base["value"] == 0.5
    sora = runs[(runs["variant"] == "sora") & (runs["source"] == "train") & (runs["seed"] == 0)]
    # start = r_max 8 × 2 target modules (from adapter_config); end = last logged live_rank_total
    assert dict(zip(sora["metric"], sora["value"])) == \
        {"final_loss": 1.5, "live_rank_start": 16.0, "live_rank_final": 9.0}


def test_metric_names_with_filters_and_builtins():
    data = {"results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.5,
                                  "exact_match_stderr,strict-match": 0.1, "exact_match,flexible-extract": 0.6,
                                  "sample_len": 3},
                        "lorabench_cpt_general": {"word_perplexity,none": None}}}
    rows = collect.parse_results(data)
    assert len(rows) == 3  # "alias" and "sample_len" are not metrics; the stderr goes with its metric
    assert [(r["source"], r["metric"], r["filter"], r["value"]) for r in rows[:2]] == \
        [("gsm8k", "exact_match", "strict-match", 0.5), ("gsm8k", "exact_match", "flexible-extract", 0.6)]
    assert rows[0]["stderr"] == 0.1 and math.isnan(rows[1]["stderr"])
    assert math.isnan(rows[2]["value"]) and not rows[2]["higher_is_better"]  # JSON null: NaN, perplexity
    assert collect.attribute("gsm8k", "exact_match", "strict-match", "math") == \
        ("math", "gsm8k/exact_match[strict-match]")
    assert collect.attribute("lorabench_math", "exact_match", "none", "math") == ("math", "exact_match")
    assert collect.attribute("lorabench_cpt_general", "acc", "none", "cpt_domain") == ("cpt_general", "acc")
    assert collect.attribute("lorabench_mnli_matched", "acc", "none", "mnli") == ("mnli", "matched/acc")
    assert collect.attribute("wikitext", "word_perplexity", "none", "cpt_domain")[0] == "cpt_general"


def test_runs_csv_round_trip(runs, tmp_path):
    path = collect.write_runs(runs, tmp_path)
    again = collect.read_runs(path)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), runs.reset_index(drop=True), check_dtype=False)


def test_training_curves_skip_the_torn_last_line(results):
    curves = collect.collect_curves(results)
    lora = curves[(curves["task"] == "sst2") & (curves["variant"] == "lora") & (curves["seed"] == 0)]
    assert list(lora["step"]) == [5, 10, 15, 20, 25, 30] and lora["loss"].iloc[0] == pytest.approx(2.75)


# --- stats -------------------------------------------------------------------------------------
def test_mean_and_95_ci_by_hand():
    s = stats.summarize([80.0, 82.0, 87.0])
    half = T_975_DF2 * math.sqrt(13.0) / math.sqrt(3.0)  # s² = (9 + 1 + 16) / 2 = 13
    assert (s.n, s.kind, s.mean) == (3, "ci", 83.0)
    assert s.half_width == pytest.approx(half) and half == pytest.approx(8.956686, abs=1e-6)
    assert stats.format_summary(s) == "83.0 ± 9.0 (n=3)"


def test_min_max_below_three_seeds_and_single_values():
    two = stats.summarize([78.0, 80.0, float("nan")])
    assert (two.kind, two.n, two.low, two.high, two.mean) == ("range", 2, 78.0, 80.0, 79.0)
    assert stats.format_summary(two) == "79.0 [78.0–80.0] (n=2)"
    assert stats.format_summary(stats.summarize([0.7342])) == "0.734 (n=1)"
    assert stats.format_summary(stats.summarize([])) == "—"
    assert stats.format_summary(stats.summarize([8.81, 8.85, 8.83])).startswith("8.83 ± ")


def test_paired_difference_by_hand():
    d = stats.difference([1.0, 2.0, 3.0], [0.0, 0.0, 1.0], seeds_a=[0, 1, 2], seeds_b=[0, 1, 2])
    # differences 1, 2, 2: mean 5/3, s = sqrt(1/3), se = 1/3
    assert d.test == "paired t" and d.estimate == pytest.approx(5 / 3)
    assert (d.low, d.high) == (pytest.approx(5 / 3 - T_975_DF2 / 3), pytest.approx(5 / 3 + T_975_DF2 / 3))


def test_welch_difference_by_hand():
    d = stats.difference([1.0, 2.0, 3.0], [2.0, 4.0])  # variances 1 and 2
    se = math.sqrt(1 / 3 + 2 / 2)
    df = (4 / 3) ** 2 / ((1 / 3) ** 2 / 2 + 1.0 ** 2 / 1)
    half = scipy_stats.t.ppf(0.975, df) * se
    assert d.test == "Welch t" and d.estimate == pytest.approx(-1.0)
    assert (d.low, d.high) == (pytest.approx(-1 - half), pytest.approx(-1 + half))
    # identical paired differences have no paired CI: Welch on all values instead
    assert stats.difference([78, 80], [80, 82, 87], [0, 1], [0, 1, 2]).test == "Welch t"


@pytest.mark.parametrize("low, high, estimate, expected", [
    (0.5, 2.0, 1.0, "holds"), (-2.0, -0.5, -1.0, "does not hold"), (-0.5, 2.0, 1.0, "inconclusive"),
    (math.nan, math.nan, 12.0, "holds"), (math.nan, math.nan, -10.0, "does not hold"),
    (math.nan, math.nan, 9.0, "inconclusive")])
def test_decision_rule(low, high, estimate, expected):
    diff = stats.Difference(estimate, low, high, 3, 3, "test")
    assert stats.decide(diff, boundary=0.0, decisive=10.0) == expected


def test_combining_parts():
    assert stats.combine(["holds", "holds"]) == "holds"
    assert stats.combine(["holds", "inconclusive"]) == "inconclusive"
    assert stats.combine(["holds", "does not hold", "inconclusive"]) == "does not hold"
    assert stats.combine([]) == "inconclusive"


# --- tables ------------------------------------------------------------------------------------
def test_aggregate_numbers(runs):
    summary = tables.aggregate(runs)
    lora = one(summary, task="sst2", variant="lora", metric_id="acc")
    assert (lora["n"], lora["kind"], lora["mean"], lora["scale"]) == (3, "ci", pytest.approx(83.0), 100.0)
    assert lora["high"] - lora["mean"] == pytest.approx(T_975_DF2 * math.sqrt(13 / 3))
    ppl = one(summary, task="cpt_general", variant="milora")
    assert (ppl["scale"], ppl["cell"]) == (1.0, "20.5 [20.0–21.0] (n=2)")


def test_family_tables_markdown_latex_csv(runs, tmp_path):
    written = tables.write_family_tables(runs, tmp_path)
    assert {p.name for p in written["glue"]} == {"glue.csv", "glue.md", "glue.tex"}
    md = (tmp_path / "tables" / "glue.md").read_text()
    assert "| lora | lora | 8 | 3 ok | 83.0 ± 9.0 (n=3) | 1,000 | 11.0 ± 2.5 (n=3) | 100.0 ± 0.0 (n=3) |" in md
    assert "| vera | vera | 256 | 2 ok | 79.0 [78.0–80.0] (n=2) | 50 |" in md
    assert "| sora | sora | 8 | 1 ok, 1 diverged | 81.0 (n=1; 1 failed: diverged: loss is nan at step 12) |" in md
    assert "| mora1 | mora | 8 | 1 failed | failed: OutOfMemoryError: CUDA |" in md
    assert md.index("| base |") < md.index("| lora |") < md.index("| mora1 |")
    tex = (tmp_path / "tables" / "glue.tex").read_text()
    assert r"83.0 $\pm$ 9.0 (n=3)" in tex and r"79.0 [78.0--80.0] (n=2)" in tex and r"\toprule" in tex
    assert "failed: OutOfMemoryError: CUDA" in tex
    csv = pd.read_csv(tmp_path / "tables" / "glue.csv")
    assert csv.set_index("variant").loc["vera", "acc"] == "79.0 [78.0–80.0] (n=2)"
    cpt = (tmp_path / "tables" / "continual_pretraining.md").read_text()
    assert "cpt_general word_perplexity" in cpt and "30.5 [30.0–31.0] (n=2)" in cpt


def test_latex_and_markdown_escaping():
    from analysis.render import escape_latex, to_markdown
    assert escape_latex("a_b & 5% ± 1") == r"a\_b \& 5\% $\pm$ 1"
    assert to_markdown(pd.DataFrame({"x": ["a|b"]})) == "| x |\n|---|\n| a\\|b |\n"


# --- paper reference data ----------------------------------------------------------------------
def test_reference_numbers_and_verification_flags():
    ref = reference.load_reference()
    # the seed papers' 227 rows (MoRA Table 3 once) + PEFT's MetaMathQA benchmark: 41 experiments × 3 columns
    assert len(ref) == 227 + 123 and set(ref["paper"]) == {"MoRA", "MiLoRA", "VeRA", "SoRA", "PEFT"}
    assert len(ref[ref["paper"] == "PEFT"]) == 123
    cell = lambda **w: one(ref, **w)["value"]  # noqa: E731
    assert cell(paper="MoRA", table="2", method="MoRA", r=8, column="700") == 87.4
    assert cell(paper="MoRA", table="1", method="LoRA", r=256, column="GSM8K") == 67.9
    assert cell(paper="MiLoRA", table="forgetting", method="PiSSA") == 6.07
    assert cell(paper="VeRA", table="glue", model="RoBERTa-large", method="VeRA", column="params") == 0.061
    assert cell(paper="SoRA", table="glue", method="SoRA", column="QQP F1") == 89.87
    assert cell(paper="MoRA", table="3", model="LLaMA-1.3B", method="ReMoRA") == 23.34
    assert cell(paper="MiLoRA", table="math", method="FFT", column="GSM8K") == 66.5
    unverified = ref[~ref["verified"]]
    # MiLoRA's forgetting numbers are not in the paper's reachable material, nor VeRA's GLUE FT rows
    assert set(zip(unverified["paper"], unverified["table"])) == \
        {("VeRA", "e2e"), ("SoRA", "glue"), ("MiLoRA", "forgetting"), ("VeRA", "glue")}
    assert set(unverified.loc[unverified["table"].eq("glue") & unverified["paper"].eq("VeRA"), "method"]) == {"FFT"}
    twice = pd.concat([ref, ref.iloc[:1]]).astype({"r": "object"})
    twice["r"] = twice["r"].map(lambda r: "" if pd.isna(r) else r)
    with pytest.raises(ValueError, match="publish the same cell twice"):
        path = "papers_twice.csv"
        twice.to_csv(path, index=False)
        try:
            reference.load_reference(path)
        finally:
            import os
            os.remove(path)


def test_every_mapped_cell_has_a_published_number():
    ref, empty = reference.load_reference(), collect.to_frame([])
    for entry in reference.load_mapping():
        columns = sum(1 + bool(c.get("standard")) + (c.get("params") == "adapter") for c in entry["columns"].values())
        for model in reference.table_models(ref[ref["paper"].eq(entry["paper"]) & ref["table"].eq(entry["table"])]):
            table = reference.paper_table(empty, ref, entry, "values", model)
            assert len(table) == len(entry["rows"]) * columns and table["n"].sum() == 0
            assert set(table["model"]) == {model}


def test_paper_table_shape_mode_maps_steps_and_ranks(runs):
    ref = reference.load_reference()
    entry = next(e for e in reference.load_mapping() if e["paper"] == "MoRA" and e["table"] == "2")
    table = reference.paper_table(runs, ref, entry, "shape")
    # paper steps 300/500/700/900 of 900 -> our evaluated steps nearest 10, 16.7, 23.3, 30 (of 30)
    mora_300 = one(table, method="MoRA", r=8, column="300")
    # paper rank 3: FFT 42.5 and MoRA r=256 41.6 come first (FFT has no run here: no rank of ours)
    assert mora_300["ours"] == pytest.approx(31.0) and mora_300["our rank"] == 1 and mora_300["paper rank"] == 3
    assert one(table, method="FFT", column="300")["n"] == 0
    assert one(table, method="LoRA", r=8, column="700")["ours"] == pytest.approx(21.0)
    assert one(table, method="MoRA", r=256, column="900")["n"] == 0  # we ran no larger rank
    values = reference.paper_table(runs, ref, entry, "values")
    assert values["n"].sum() == 0  # the paper's steps and ranks were not run


def test_paper_table_values_mode_delta_and_written_files(runs, tmp_path):
    ref = reference.load_reference()
    entry = next(e for e in reference.load_mapping() if e["paper"] == "VeRA" and e["table"] == "glue")
    assert reference.paper_table(runs, ref, entry, "values").empty  # the tiny model is none of the paper's
    table = reference.paper_table(runs, ref, entry, "values", model="RoBERTa-base")
    assert one(table, method="VeRA", column="SST-2")["n"] == 0  # the paper's r = 1024; ours ran 256
    lora = one(table, method="LoRA", column="SST-2")  # VeRA's table: the median of the seeds
    assert lora["Δ"] == pytest.approx(82.0 - 95.1) and lora["ours cell"] == "82.0 [80.0–87.0] (median, n=3)"
    assert one(table, method="LoRA", column="params")["ours"] == pytest.approx(1000 / 1e6)
    written = reference.write_paper_tables(runs, tmp_path)
    assert "VeRA glue" in written and "MiLoRA commonsense" not in written
    md = (tmp_path / "tables" / "paper_VeRA_glue.md").read_text()
    assert "Shape only" in md and \
        "| RoBERTa-base | VeRA | 1024 | vera (r=256) | SST-2 | 94.6 | 79.0 [78.0–80.0] (median, n=2) | 3 | 2 |" in md
    assert "| RoBERTa-base | FFT |  | — | SST-2 | 94.8 (unverified) | — | 2 |  |" in md  # no full run here
    assert "| RoBERTa-base | VeRA | 1024 | vera (r=256) | params | 0.043 | 0.0000500 (median, n=2) | 1 | 1 |" in md
    assert "(unverified)" in (tmp_path / "tables" / "paper_SoRA_glue.md").read_text()
    assert reference.comparison_mode("vera", "VeRA") == "values"
    assert reference.comparison_mode("tiny", "VeRA") == "shape"


def test_headline_number_suite_or_mean_of_builtins():
    rows = []
    for seed in range(2):  # commonsense evaluated by the suite and by two built-in benchmarks
        rows += [row("commonsense", "lora", seed, "acc", 0.70 + seed / 10),
                 row("commonsense", "lora", seed, "acc", 0.60, source="boolq"),
                 row("commonsense", "lora", seed, "acc", 0.80, source="piqa"),
                 row("commonsense", "lora", seed, "acc_norm", 0.10, source="piqa")]
    runs = collect.to_frame(rows)
    assert list(primary_values(runs, "commonsense")["value"]) == pytest.approx([0.70, 0.80])
    assert list(primary_values(runs, "commonsense", source="builtin")["value"]) == pytest.approx([0.70, 0.70])


# --- plots -------------------------------------------------------------------------------------
def test_pareto_front_picks_the_undominated_points():
    points = pd.DataFrame({"variant": list("ABCDE"), "trainable_params": [10, 20, 30, 40, 20],
                           "value": [50.0, 60.0, 55.0, 70.0, 40.0]})
    assert list(pareto_front(points)["variant"]) == ["A", "B", "D"]
    perplexity = points.assign(value=[30.0, 20.0, 25.0, 10.0, 20.0])  # lower is better; E ties B
    assert list(pareto_front(perplexity, higher_is_better=False)["variant"]) == ["A", "B", "E", "D"]


def test_plots_are_written_as_png_and_pdf(runs, results, tmp_path):
    curves = collect.collect_curves(results)
    spectra = pd.DataFrame({"train_task": "sst2", "variant": ["lora"] * 3 + ["multilora"] * 3, "r": 8,
                            "seed": 0, "index": [1, 2, 3] * 2, "value": [1.0, 0.1, 0.01, 1.0, 0.8, 0.6]})
    written = write_plots(runs, curves, spectra, tmp_path)
    expected = {"params": {"params_sst2", "params_uuid", "params_cpt_domain"},
                "loss": {"loss_sst2", "loss_uuid", "loss_cpt_domain"},
                "uuid_accuracy": {"uuid_accuracy"}, "sora_rank": {"sora_rank_sst2"}, "spectra": {"spectra_sst2"},
                "forgetting": {"forgetting_cpt_domain"}}
    for kind, stems in expected.items():
        assert {p.stem for p in written[kind]} == stems, kind
        assert {p.suffix for p in written[kind]} == {".png", ".pdf"}
        assert all(p.stat().st_size > 1000 for p in written[kind])
    assert plot_spectra(pd.DataFrame(), tmp_path) == []


def test_forgetting_points_by_hand(runs):
    from analysis.plots import forgetting_points
    points = forgetting_points(runs).set_index("variant")
    # general ppl 20.5 (milora) and 30.5 (pissa) vs base 18; domain ppl 10.5 vs base 15 (lower is better)
    assert points.loc["milora", "forgetting_pct"] == pytest.approx((20.5 / 18 - 1) * 100)
    assert points.loc["pissa", "forgetting_pct"] == pytest.approx((30.5 / 18 - 1) * 100)
    assert points.loc["milora", "gain"] == pytest.approx((1 - 10.5 / 15) * 100)


def test_settings_scales():
    assert settings.display_scale("acc") == 100 and settings.display_scale("bleu") == 1
    assert settings.comparison_unit("bleu") == "points" and settings.comparison_unit("word_perplexity") == "log-ratio"
    assert np.allclose(settings.to_comparison_scale([10.0, 20.0], "word_perplexity", False), -np.log([10.0, 20.0]))


# --- leaderboard: every method against LoRA --------------------------------------------------------------
def _board_runs(values: dict[str, list[float]], params: dict[str, int], metric="acc", task="sst2") -> pd.DataFrame:
    rows = [{"train_task": task, "task": task, "family": "glue", "variant": variant, "seed": seed, "metric": metric,
             "metric_id": metric, "value": value, "final": True, "status": "ok", "reason": "", "source": "lorabench_sst2",
             "higher_is_better": metric != "word_perplexity", "trainable_params": params[variant]}
            for variant, seeds in values.items() for seed, value in enumerate(seeds)]
    return pd.DataFrame(rows)


def test_leaderboard_ranks_and_compares_each_method_with_lora_by_seed():
    from analysis.leaderboard import leaderboard
    from analysis.stats import difference

    values = {"lora": [0.80, 0.82, 0.84], "better": [0.90, 0.93, 0.94], "same": [0.79, 0.85, 0.83],
              "worse": [0.60, 0.61, 0.65], "single": [0.99], "base": [0.5]}
    runs = _board_runs(values, {"lora": 100, "better": 200, "same": 10, "worse": 50, "single": 5, "base": 0})
    board = leaderboard(runs, tables.aggregate(runs)).set_index("variant")
    assert list(board.index) == ["single", "better", "same", "lora", "worse"]  # best mean first, no base row
    assert list(board["rank"]) == [1, 2, 3, 4, 5]
    assert board.loc["lora", "verdict"] == "reference"
    assert dict(board["verdict"]) == {"single": "—", "better": "better", "same": "tie", "lora": "reference",
                                      "worse": "worse"}
    by_hand = difference([90, 93, 94], [80, 82, 84], [0, 1, 2], [0, 1, 2])  # paired, in points
    assert by_hand.test == "paired t"
    assert board.loc["better", "Δ vs LoRA"] == f"{by_hand.estimate:+.3g}" == "+10.3"
    assert board.loc["better", "Δ 95% CI"] == f"[{by_hand.low:+.3g}, {by_hand.high:+.3g}]"
    assert board.loc["better", "trainable params"] == "200" and board.loc["better", "n"] == 3
    assert board.loc["single", "95% CI (min–max if n = 2)"] == "—" and board.loc["single", "test"] == "none (n=1)"


def test_leaderboard_plot_draws_every_method_but_lora_best_at_the_top(tmp_path):
    from analysis.leaderboard import COLUMNS, leaderboard, plotted_rows, write_leaderboard

    values = {"lora": [0.80, 0.82, 0.84], "better": [0.90, 0.93, 0.94], "same": [0.79, 0.85, 0.83],
              "worse": [0.60, 0.61, 0.65], "base": [0.5]}
    runs = _board_runs(values, {"lora": 100, "better": 200, "same": 10, "worse": 50, "base": 0})
    summary = tables.aggregate(runs)
    rows = plotted_rows(leaderboard(runs, summary), "sst2")
    assert list(rows["variant"]) == ["worse", "same", "better"]            # bottom to top
    assert list(rows["verdict"]) == ["worse", "tie", "better"]
    assert all(low < delta < high for delta, low, high in zip(rows["_delta"], rows["_low"], rows["_high"]))
    paths = write_leaderboard(runs, summary, tmp_path, "test")
    assert tmp_path / "plots" / "leaderboard_sst2.png" in paths and (tmp_path / "plots" / "leaderboard_sst2.png").stat().st_size > 5000
    assert list(pd.read_csv(tmp_path / "tables" / "leaderboard.csv").columns) == COLUMNS   # the numbers stay out
    # lower is better (perplexity): the lowest Δ is the best, at the top
    ppl = _board_runs({"lora": [30.0, 31.0, 29.0], "milora": [20.0, 21.0, 19.5], "vera": [40.0, 41.0, 42.0]},
                      {"lora": 8, "milora": 8, "vera": 1}, metric="word_perplexity", task="cpt_domain")
    assert list(plotted_rows(leaderboard(ppl, tables.aggregate(ppl)), "cpt_domain")["variant"]) == ["vera", "milora"]


def test_leaderboard_where_lower_is_better():
    from analysis.leaderboard import leaderboard

    values = {"lora": [30.0, 31.0, 29.0], "milora": [20.0, 21.0, 19.5]}
    runs = _board_runs(values, {"lora": 8, "milora": 8}, metric="word_perplexity", task="cpt_domain")
    board = leaderboard(runs, tables.aggregate(runs)).set_index("variant")
    assert list(board.index) == ["milora", "lora"]
    assert board.loc["milora", "verdict"] == "better" and board.loc["milora", "Δ vs LoRA"].startswith("-")
