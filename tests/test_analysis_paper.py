"""The paper | ours | Δ tables on results folders named and laid out as the paper profiles make
them (config/paper/*.yaml variant names, several lrs, VeRA's 5 seeds), and the metric-name check:
every metric id a paper table asks for is one that a run's eval.json yields."""
import math
import re
from functools import lru_cache
from pathlib import Path

import lm_eval
import pytest
import yaml

import evaluation
import tasks
from analysis import collect, reference
from analysis.paper_models import paper_model, recognise, same_model
from analysis.values import id_rank
from evaluation.suite_tasks import SUITE_TASKS
from test_analysis_data import write_run

LLAMA2 = "meta-llama/Llama-2-7b-hf"


def one(frame, **where):
    for column, value in where.items():
        frame = frame[frame[column] == value]
    assert len(frame) == 1, f"{len(frame)} rows for {where}"
    return frame.iloc[0]


def entry(paper, table):
    return next(e for e in reference.load_mapping() if e["paper"] == paper and e["table"] == table)


# --- which model a run is ----------------------------------------------------------------------
def test_base_model_to_the_papers_model_names():
    assert recognise(LLAMA2) == "LLaMA-2-7B" and same_model("LLaMA-2-7B", "LLaMA2-7B")
    assert recognise("/scratch/hub/models--meta-llama--Meta-Llama-3-8B/snapshots/0a1b2c") == "LLaMA3-8B"
    assert recognise("/models/roberta-large/") == "RoBERTa-large"  # a local copy named like the repo
    assert recognise("openai-community/gpt2-medium") == "GPT-2 M" and recognise("gpt2-large") == "GPT-2 L"
    assert recognise("microsoft/deberta-v3-base") == "DeBERTaV3-base" and recognise("/tmp/tiny") is None
    # a recognised base model wins; an unrecognised local path is a paper's model only when declared
    assert paper_model("FacebookAI/roberta-large") == "RoBERTa-large"
    assert paper_model("/tmp/tiny-llama") is None
    assert paper_model("/tmp/tiny-llama", declared="LLaMA-2-7B") == "LLaMA-2-7B"


# --- MoRA: lr variants, validation selection, protocol and standard columns ---------------------
MATH = {  # variant: (method, options, validation loss, metamath_gsm8k, gsm8k strict, suite exact_match)
    "lora_r8_lr1e-4": ("lora", {"r": 8, "alpha": 16}, 1.30, 0.70, 0.40, 0.50),
    "lora_r8_lr2e-4": ("lora", {"r": 8, "alpha": 16}, 1.20, 0.60, 0.30, 0.45),
    "mora6_r8_lr2e-4": ("mora", {"r": 8, "mora_type": 6}, 1.10, 0.62, 0.35, 0.40),
    "mora6_r8_lr3e-4": ("mora", {"r": 8, "mora_type": 6}, 1.15, 0.66, 0.36, 0.41),
    "mora1_r8_lr2e-4": ("mora", {"r": 8, "mora_type": 1}, 1.00, 0.55, 0.20, 0.30),  # Table 4 only
    "mora1_r256_lr3e-5": ("mora", {"r": 256, "mora_type": 1}, 1.05, 0.68, 0.45, 0.52),
}


def mora_results(root: Path, base_model=LLAMA2) -> Path:
    for variant, (method, options, loss, protocol, strict, suite) in MATH.items():
        results = {"metamath_gsm8k": {"exact_match": protocol},
                   "gsm8k": {"exact_match,strict-match": strict, "exact_match,flexible-extract": strict + 0.1},
                   "lorabench_math": {"exact_match": suite}}
        write_run(root, "math", variant, 0, results=results, method=method, options=options,
                  summary_extra={"eval_loss": loss}, base_model=base_model)
    return root


@pytest.fixture(scope="module")
def mora_runs(tmp_path_factory):
    return collect.collect(mora_results(tmp_path_factory.mktemp("paper") / "mora"))


def test_runs_carry_base_model_validation_and_adapter_params(mora_runs):
    run = mora_runs[mora_runs["variant"].eq("lora_r8_lr2e-4")]
    assert set(run["base_model"]) == {LLAMA2} and set(run["adapter_params"]) == {1000.0}
    assert one(run, metric="validation_loss")["value"] == 1.20
    assert set(run["metric_id"]) >= {"metamath_gsm8k/exact_match", "gsm8k/exact_match[strict-match]", "exact_match"}
    # without eval_loss in the summary: the last validation loss of train_log.jsonl
    assert collect.validation_loss({}, [{"step": 5, "eval_loss": 2.0}, {"step": 9, "eval_loss": 1.5}]) == 1.5


def test_best_lr_is_chosen_on_validation_never_on_test(mora_runs):
    table = reference.paper_table(mora_runs, reference.load_reference(), entry("MoRA", "1"), "values", "LLaMA-2-7B")
    lora = one(table, method="LoRA", r=8, column="GSM8K")
    # lr 1e-4 has the better test score (70.0) but the worse validation loss: lr 2e-4 is reported
    assert lora["variant"] == "lora_r8_lr2e-4" and lora["ours"] == pytest.approx(60.0)
    assert lora["Δ"] == pytest.approx(60.0 - 64.6) and lora["metric_id"] == "metamath_gsm8k/exact_match"
    assert lora["candidates"] == "lora_r8_lr1e-4 lora_r8_lr2e-4" and lora["selection"].startswith("lowest validation")
    standard = one(table, method="LoRA", r=8, column="GSM8K (lm-eval standard)")
    assert (standard["variant"], standard["ours"], standard["paper"]) == ("lora_r8_lr2e-4", pytest.approx(30.0), 64.6)
    # MoRA r = 8 is type 6: the type-1 variant at r = 8 (lowest loss of all) is no candidate
    mora = one(table, method="MoRA", r=8, column="GSM8K")
    assert mora["variant"] == "mora6_r8_lr2e-4" and mora["candidates"] == "mora6_r8_lr2e-4 mora6_r8_lr3e-4"
    assert one(table, method="MoRA", r=256, column="GSM8K")["variant"] == "mora1_r256_lr3e-5"
    assert one(table, method="LoRA", r=256, column="GSM8K")["n"] == 0  # no LoRA r = 256 run
    table4 = reference.paper_table(mora_runs, reference.load_reference(), entry("MoRA", "4"), "values", "LLaMA-2-7B")
    assert one(table4, method="MoRA-sharing", r=8, column="GSM8K")["variant"] == "mora1_r8_lr2e-4"
    # values mode never falls back on the tiny profiles' suite numbers; shape mode does
    assert one(table, method="MoRA", r=8, column="MMLU0")["n"] == 0
    suite_only = mora_runs[mora_runs["metric_id"].ne("metamath_gsm8k/exact_match")]
    shape = reference.paper_table(suite_only, reference.load_reference(), entry("MoRA", "1"), "shape")
    assert one(shape, method="LoRA", r=8, column="GSM8K")["metric_id"] == "exact_match"


def test_without_validation_losses_no_lr_is_chosen():
    import pandas as pd
    values = pd.DataFrame({"variant": ["a", "b"], "run_dir": ["/a", "/b"], "value": [1.0, 2.0]})
    assert reference.choose_variant(values, {}) == (None, "no validation loss to choose among a, b")
    assert reference.choose_variant(values, {"/b": 0.5})[0] == "b"
    assert reference.choose_variant(values.iloc[:1], {}) == ("a", "the only candidate")


def test_written_mora_tables_name_the_rule_and_the_chosen_variant(tmp_path):
    root = mora_results(tmp_path / "mora")
    written = reference.write_paper_tables(collect.collect(root), root)
    assert set(written) == {"MoRA 1", "MoRA 4"}  # MoRA's tables only; Table 2 and 3 tasks not run
    md = (root / "tables" / "paper_MoRA_1.md").read_text()
    assert "lowest end-of-run validation loss" in md and "never chosen on test" not in md  # no data to check
    assert "Compared with the paper's LLaMA-2-7B rows only" in md and "(lm-eval standard)" in md
    assert "| LLaMA-2-7B | LoRA | 8 | lora_r8_lr2e-4, best of 2 | GSM8K | 64.6 | 60.0 (n=1) | -4.6 |" in md


def test_captions_say_whether_selection_saw_the_reported_rows():
    """From the data the runs trained on: disjoint → "never chosen on test"; shared rows are counted, with why."""
    table = entry("MoRA", "1")
    clean = {t: {"validation": 10, "shared": 0, "scored_on_train": False} for t in ("instruct", "math", "cpt_domain_qa")}
    text = reference.selection_text(table, clean)
    assert "on cpt_domain_qa, instruct, math: validation rows disjoint from the test rows reported, so never chosen on test" in text
    dev = {**clean, "math": {"validation": 10, "shared": 10, "scored_on_train": False}}
    text = reference.selection_text(table, dev)
    assert "never chosen on test" in text and "on math: the validation split shares 10 of its 10 rows" in text
    assert "validation_from: dev" in text and "so the selection saw them" in text
    uuid = reference.selection_text(entry("MoRA", "2"), {"uuid": {"validation": 16, "shared": 16, "scored_on_train": True}})
    assert "memorization is scored on the trained pairs" in uuid and "never chosen on test" not in uuid


def test_selection_overlap_reads_the_data_folders(tmp_path):
    import json
    for task, val, test in (("sst2", ["a", "b"], ["c"]), ("rte", ["a", "b"], ["b", "c"])):
        folder = tmp_path / "data" / task
        folder.mkdir(parents=True)
        for split, texts in (("validation", val), ("test", test)):
            (folder / f"{split}.jsonl").write_text("".join(
                json.dumps({"id": f"{task}-{split}-{i}", "text": t, "label": 0}) + "\n" for i, t in enumerate(texts)))
    assert collect.selection_overlap(tmp_path) == {
        "rte": {"validation": 2, "shared": 1, "scored_on_train": False},
        "sst2": {"validation": 2, "shared": 0, "scored_on_train": False}}


def test_other_models_rows_are_not_compared(tmp_path):
    root = mora_results(tmp_path / "mora", base_model="meta-llama/Meta-Llama-3-8B")
    assert reference.write_paper_tables(collect.collect(root), root) == {}  # MoRA has no LLaMA-3 rows


def test_uuid_table_reads_the_snapshot_steps(tmp_path):
    """MoRA Table 2 at the paper's steps 300/500/700/900 (eval_step<N>.json), final eval at 1000."""
    root = tmp_path / "mora"
    for variant, loss, scale in (("mora6_r8_lr5e-5", 0.9, 1.0), ("mora6_r8_lr1e-4", 0.5, 0.5)):
        steps = {s: {"lorabench_uuid": {"char_acc": scale * s / 1000, "exact_match": 0.0}} for s in (300, 500, 700, 900)}
        write_run(root, "uuid", variant, 0, method="mora", options={"r": 8, "mora_type": 6}, steps=1000,
                  results={"lorabench_uuid": {"char_acc": 0.99, "exact_match": 0.5}}, step_results=steps,
                  summary_extra={"eval_loss": loss}, base_model=LLAMA2)
    table = reference.paper_table(collect.collect(root), reference.load_reference(), entry("MoRA", "2"), "values",
                                  "LLaMA-2-7B")
    mora = table[table["method"].eq("MoRA") & table["r"].eq(8)]
    assert set(mora["variant"]) == {"mora6_r8_lr1e-4"}  # the lower validation loss
    assert list(mora["ours"]) == pytest.approx([15.0, 25.0, 35.0, 45.0])
    assert list(mora["paper"]) == [10.1, 15.7, 87.4, 100.0]


# --- VeRA: 5 seeds, the median; RoBERTa-large rows for the large overlay -------------------------
def json_table(path):
    import pandas as pd
    return pd.read_csv(path, keep_default_na=False, na_values={"ours": [""], "paper": [""]})


def vera_results(root: Path, base_model: str) -> Path:
    accs = {"lora_r8_lr4e-4": [0.95, 0.96, 0.10, 0.97, 0.94], "lora_r8_lr5e-4": [0.99] * 5,
            "vera_r256_lr4e-3": [0.93, 0.50, 0.94, 0.95, 0.92], "vera_r256_lr1e-2": [0.90] * 5}
    losses = {"lora_r8_lr4e-4": 0.2, "lora_r8_lr5e-4": 0.3, "vera_r256_lr4e-3": 0.25, "vera_r256_lr1e-2": 0.4}
    for variant, values in accs.items():
        method, r = ("vera", 256) if variant.startswith("vera") else ("lora", 8)
        for seed, acc in enumerate(values):
            write_run(root, "sst2", variant, seed, results={"lorabench_sst2": {"acc": acc}}, method=method,
                      options={"r": r}, params=61_000 + 1538 if method == "vera" else 786_432 + 1538,
                      adapter_params=61_000 if method == "vera" else 786_432,
                      summary_extra={"eval_loss": losses[variant] + seed / 100}, base_model=base_model)
    return root


def test_vera_large_overlay_median_of_5_against_roberta_large(tmp_path):
    root = vera_results(tmp_path / "vera_large", "FacebookAI/roberta-large")
    written = reference.write_paper_tables(collect.collect(root), root)
    assert set(written) == {"VeRA glue"}
    table = json_table(root / "tables" / "paper_VeRA_glue.csv")
    vera = one(table, method="VeRA", column="SST-2")
    # r = 256 is the paper's RoBERTa-large VeRA; lr 4e-3 has the lower validation loss; median of 5
    assert (vera["model"], vera["r"], vera["variant"]) == ("RoBERTa-large", "256", "vera_r256_lr4e-3")
    assert (vera["ours"], vera["n"], vera["paper"]) == (pytest.approx(93.0), 5, 96.1)
    assert vera["ours cell"] == "93.0 [50.0–95.0] (median, n=5)"
    lora = one(table, method="LoRA", column="SST-2")  # the mean would be 78.4, the median is 95.0
    assert lora["variant"] == "lora_r8_lr4e-4" and lora["ours"] == pytest.approx(95.0)
    params = one(table, method="VeRA", column="params")
    assert (params["ours"], params["paper"]) == (pytest.approx(0.061), 0.061)  # adapter only, as the paper
    assert one(table, method="VeRA", column="params incl. head")["ours"] == pytest.approx(0.062538)
    md = (root / "tables" / "paper_VeRA_glue.md").read_text()
    assert "median over seeds" in md and "RoBERTa-large rows only" in md and "RoBERTa-base" not in md


def test_vera_runs_of_another_model_are_not_compared(tmp_path):
    root = vera_results(tmp_path / "vera", "openai-community/gpt2-medium")
    assert reference.write_paper_tables(collect.collect(root), root) == {}


# --- metric names: every id a paper table asks for, from realistic eval.json keys ---------------
class _TagLoader(yaml.SafeLoader):
    """lm-eval YAMLs: `!function` and other tags read as None."""


_TagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
TASK_DIRS = [Path(evaluation.__file__).parent / "tasks", Path(lm_eval.__file__).parent / "tasks"]
DECLARATION = re.compile(r'^(?:task|group):\s*"?([\w\-.]+)"?\s*$', re.M)


@lru_cache(maxsize=None)
def task_files() -> dict[str, Path]:
    """{lm-eval task or group name: its YAML}: the suite's own and paper tasks first, then lm-eval's."""
    index = {}
    for root in TASK_DIRS:
        for path in sorted(root.rglob("*.yaml")):
            for match in DECLARATION.finditer(path.read_text(errors="ignore")):
                index.setdefault(match.group(1), path)
    return index


def read_task_yaml(path: Path) -> dict:
    config = yaml.load(path.read_text(), Loader=_TagLoader) or {}
    if config.get("include"):
        config = {**read_task_yaml(path.parent / config["include"]), **config}
    return config


def result_keys(task: str) -> list[str]:
    """The "<metric>,<filter>" keys lm-eval writes for `task` into eval.json's results."""
    config = read_task_yaml(task_files()[task])
    if config.get("group") == task:
        return [f"{m['metric']},{m.get('filter_list', 'none')}" for m in config.get("aggregate_metric_list") or []]
    filters = [f["name"] for f in config.get("filter_list") or []] or ["none"]
    return [f"{m['metric']},{f}" for m in config.get("metric_list") or [] for f in filters]


def produced_ids(task: str, metric_id: str) -> set[str]:
    """The metric ids (collect.attribute) of task `task` in the eval.json of a run that evaluated
    the lm-eval task `metric_id` names (a suite task for ids without one)."""
    spec = tasks.get(task) if task in tasks.available() else None
    train_task = (spec.shares_train_with if spec is not None else None) or task
    source = metric_id.split("/", 1)[0] if "/" in metric_id else f"lorabench_{task}"
    template = SUITE_TASKS[task].template if source == f"lorabench_{task}" else source
    ids = set()
    for row in collect.parse_results({"results": {source: {k: 0.5 for k in result_keys(template)}}}):
        found_task, found_id = collect.attribute(row["source"], row["metric"], row["filter"], train_task)
        if found_task == task:
            ids.add(found_id)
    return ids


def requested_ids(mapping_entry) -> list[tuple[str, str, str]]:
    """(column, task, metric id) for every id a table's columns name (protocol, standard, shape)."""
    wanted = []
    for name, column in mapping_entry["columns"].items():
        for key in ("metric", "standard", "shape"):
            wanted += [(name, column["task"], m) for m in reference.metric_ids(column, key) if m != reference.PRIMARY]
    return wanted


def test_every_metric_id_a_paper_table_asks_for_is_in_a_runs_eval_json():
    missing = []
    for mapping_entry in reference.load_mapping():
        for column, task, metric_id in requested_ids(mapping_entry):
            if not any(math.isfinite(id_rank(found, [metric_id])) for found in produced_ids(task, metric_id)):
                missing.append(f"{mapping_entry['paper']} {mapping_entry['table']} {column}: {metric_id}")
    assert missing == []
    # the check finds what it must: lm-eval has no task "siqa" (it is social_iqa), the old mapping's id
    with pytest.raises(KeyError):
        produced_ids("commonsense", "siqa/acc")
    assert "pubmedqa/acc" in produced_ids("cpt_domain_qa", "pubmedqa/acc")  # the QA probe's, not cpt_domain's
    assert produced_ids("math", "gsm8k/x") == {"gsm8k/exact_match[strict-match]", "gsm8k/exact_match[flexible-extract]"}
    assert produced_ids("commonsense", "llmadapters_commonsense/acc") == {"llmadapters_commonsense/acc"}
