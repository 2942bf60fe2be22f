"""Every lm-eval task a paper profile names loads and scores offline, from the local files in the
Hub datasets' schemas under .test/hub (config key `eval.lm_eval_data`, evaluation/lm_eval_data.py).

The built-in task index takes ~20 s to build, so one TaskManager serves the whole module.
"""

import json
from pathlib import Path

import pytest
import torch
import yaml
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from evaluation import run
from evaluation.lm_eval_data import leaf_tasks, with_local_data
from evaluation.peft_benchmark import evaluation_tokenizer
from evaluation.suite_tasks import TASKS_DIR

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / ".test" / "hub"
MEDICAL_MMLU = ["mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_biology",
                "mmlu_college_medicine", "mmlu_medical_genetics", "mmlu_professional_medicine"]
# The metric each task reports (for groups: the group's aggregate).
METRICS = {
    "mmlu": "acc,none", "gsm8k": "exact_match,strict-match", "minerva_math": "math_verify,none",
    "hendrycks_math": "exact_match,none", "ifeval": "prompt_level_strict_acc,none",
    "boolq": "acc,none", "piqa": "acc,none", "social_iqa": "acc,none", "hellaswag": "acc_norm,none",
    "winogrande": "acc,none", "arc_easy": "acc,none", "arc_challenge": "acc,none",
    "openbookqa": "acc_norm,none", "pubmedqa": "acc,none", "wikitext": "word_perplexity,none",
    **dict.fromkeys(MEDICAL_MMLU, "acc,none"),
    # the papers' protocols (evaluation/tasks/paper/)
    "mmlu_5shot": "acc,none", "metamath_gsm8k": "exact_match,none", "metamath_math": "exact_match,none",
    "llmadapters_commonsense": "acc,none",
    "peft_gsm8k": "accuracy,none", "peft_wiki_loss": "wiki_loss,none",  # PEFT's MetaMathQA benchmark
}


def profile_tasks() -> set[str]:
    names = set()
    for path in sorted((ROOT / "config" / "paper").glob("*.yaml")):
        per_task = (yaml.safe_load(path.read_text()).get("eval") or {}).get("lm_eval_tasks") or {}
        names.update(name for tasks in per_task.values() for name in tasks)
    return names


def hub_mapping() -> dict:
    """.test/hub/lm_eval_data.yaml with its repo-relative paths made absolute."""
    data = yaml.safe_load((HUB / "lm_eval_data.yaml").read_text())["eval"]["lm_eval_data"]
    return {key: {split: str(ROOT / path) for split, path in files.items()} for key, files in data.items()}


@pytest.fixture(scope="module")
def task_manager():
    return TaskManager(include_path=str(TASKS_DIR))


@pytest.fixture(scope="module")
def local(task_manager):
    return with_local_data(task_manager, hub_mapping())


@pytest.fixture(scope="module")
def lm():
    text = [line for path in sorted(HUB.glob("*/*.jsonl")) for line in path.read_text().splitlines()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<eos>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)).eval()
    return model, tokenizer


def test_the_mapping_covers_every_task_of_every_paper_profile(task_manager):
    index = task_manager.task_index
    served = {task for key in hub_mapping() for task in leaf_tasks(index, key)}
    named = profile_tasks()
    assert {"mmlu", "gsm8k", "minerva_math", "ifeval", "pubmedqa", "wikitext", *MEDICAL_MMLU} <= named
    uncovered = sorted(name for name in named | {"hendrycks_math"} if not set(leaf_tasks(index, name)) <= served)
    assert not uncovered, f"add files for {uncovered} to .test/hub/lm_eval_data.yaml"
    assert named <= set(METRICS), f"name the metric of {sorted(named - set(METRICS))} in METRICS"


@pytest.fixture(scope="module")
def loaded(local, lm):
    """Every profile task (but the medical MMLU subjects, subtasks of mmlu) and hendrycks_math,
    built from the local files once: {"tasks", "groups", "group_map"} as TaskManager.load gives.
    peft_wiki_loss cuts its rows with the evaluated model's tokenizer, as evaluate_run hands it."""
    with evaluation_tokenizer(lm[1]):
        return local.load(sorted(profile_tasks() - set(MEDICAL_MMLU)) + ["hendrycks_math"])


def test_every_profile_task_loads_its_local_rows(loaded, local, lm):
    """Each task builds from the local files: its rows, and only its own subject's rows."""
    tasks = loaded["tasks"]
    for group in ("mmlu", "mmlu_5shot", "minerva_math", "metamath_math"):
        for name in leaf_tasks(local.task_index, group):  # one test row per subject
            assert len(tasks[name].eval_docs) == 1, name
    assert [d["subject"] for d in tasks["mmlu_anatomy"].eval_docs] == ["anatomy"]
    assert [d["subject"] for d in tasks["mmlu_5shot_anatomy"].fewshot_docs()] == ["anatomy"] * 5
    assert list(tasks["minerva_math_counting_and_prob"].eval_docs)[0]["answer"] == "6"
    assert list(tasks["hendrycks_math_prealgebra"].eval_docs)[0]["answer"] == "\\frac{3}{4}"
    # PubMedQA keeps the official test set: 3 of the 4 rows have test-set pubids
    assert sorted(d["pubid"] for d in tasks["pubmedqa"].eval_docs) == [12377809, 19100463, 26163474]
    assert tasks["pubmedqa"].doc_to_text(list(tasks["pubmedqa"].eval_docs)[0]).startswith("Abstract: ")
    for name, split in [("gsm8k", "test"), ("boolq", "validation"), ("winogrande", "validation"),
                        ("hellaswag", "validation"), ("arc_challenge", "test"), ("ifeval", "train")]:
        assert len(tasks[name].eval_docs) == len((HUB / name / f"{split}.jsonl").read_text().splitlines())
    with evaluation_tokenizer(lm[1]):  # peft_wiki_loss reads its rows with the model's tokenizer
        for name, task in tasks.items():  # every task builds its prompt from a local row
            assert task.config.dataset_path == "json", name
            assert task.doc_to_text(list(task.eval_docs)[0]) is not None, name


def top_level(loaded) -> list:
    """The loaded groups and tasks that no loaded group contains (what simple_evaluate takes)."""
    children = {child for kids in loaded["group_map"].values() for child in kids}
    return [obj for name, obj in {**loaded["groups"], **loaded["tasks"]}.items() if name not in children]


@pytest.mark.parametrize("which", ["profiles", "medical_mmlu"])
def test_profile_tasks_score_offline_in_one_call(loaded, local, lm, which):
    """One simple_evaluate per group of tasks, 2 items each; the medical subjects are subtasks of
    mmlu, so they get a call of their own (lm-eval refuses a task twice in one call)."""
    tasks = top_level(loaded) if which == "profiles" else MEDICAL_MMLU
    names = sorted(profile_tasks() - set(MEDICAL_MMLU)) + ["hendrycks_math"] if which == "profiles" else MEDICAL_MMLU
    model, tokenizer = lm
    with evaluation_tokenizer(tokenizer):
        output = simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16), tasks=tasks,
            task_manager=local, limit=2, bootstrap_iters=0, log_samples=False,
            gen_kwargs={"max_gen_toks": 8},
        )
    results = output["results"]
    for name in names:
        value = results[name][METRICS[name]]
        assert isinstance(value, float) and value == value, (name, results[name])
    if which == "profiles":  # group aggregates as lm-eval makes them: 57 subjects of 1 item each
        subjects = [results[t]["acc,none"] for t in leaf_tasks(local.task_index, "mmlu")]
        assert results["mmlu"]["acc,none"] == pytest.approx(sum(subjects) / 57)
        assert {"mmlu_stem", "mmlu_humanities"} <= set(results)
        assert results["wikitext"]["word_perplexity,none"] > 1


def test_evaluate_run_passes_lm_eval_data(tmp_path, task_manager, lm, monkeypatch):
    monkeypatch.setattr(run, "TaskManager", lambda **kwargs: task_manager)
    model, tokenizer = lm
    data = {"pubmedqa": {"train": str(HUB / "pubmedqa" / "train.jsonl")}}
    eval_json = run.evaluate_run(model, tokenizer, None, None, tmp_path / "eval.json",
                                 lm_eval_tasks=["pubmedqa"], lm_eval_data=data, limit=2)
    assert 0 <= eval_json["results"]["pubmedqa"]["acc,none"] <= 1
    assert eval_json["lorabench"]["lm_eval_data"] == data
    assert json.loads((tmp_path / "eval.json").read_text())["configs"]["pubmedqa"]["dataset_path"] == "json"


def test_relative_paths_are_read_from_the_working_directory(task_manager, monkeypatch):
    monkeypatch.chdir(ROOT)
    local = with_local_data(task_manager, {"boolq": {"validation": ".test/hub/boolq/validation.jsonl",
                                                      "train": ".test/hub/boolq/train.jsonl"}})
    assert local.task_index["boolq"].cfg["dataset_kwargs"]["data_files"]["train"] == str(HUB / "boolq" / "train.jsonl")
    assert task_manager.task_index["boolq"].yaml_path is not None  # the shared manager is left as it was
    assert local.task_index["boolq"].yaml_path is None


@pytest.mark.parametrize("data, message", [
    ({"gsm8kk": {"test": "x.jsonl"}}, r"unknown lm-eval task\(s\) \['gsm8kk'\].*lm-eval ls tasks"),
    ({"gsm8k": {"test": "/nonexistent/gsm8k/test.jsonl", "train": str(HUB / "gsm8k/train.jsonl")}},
     r"eval.lm_eval_data.gsm8k.test: file /nonexistent/gsm8k/test.jsonl not found.*drop the 'gsm8k' entry"),
    ({"gsm8k": {"test": str(HUB / "gsm8k/test.jsonl")}},
     r"eval.lm_eval_data.gsm8k: gsm8k reads split\(s\) 'train' \(few-shot examples\); add them"),
    ({"gsm8k": {"test": str(HUB / "gsm8k/test.csv")}}, r"gsm8k.test: .*not a .jsonl, .json or .parquet"),
    ({"boolq": [str(HUB / "boolq/validation.jsonl")]}, r"'boolq' needs a \{split: path\} mapping"),
])
def test_bad_entries_fail_early_naming_the_key(task_manager, data, message):
    with pytest.raises(ValueError, match=message):
        with_local_data(task_manager, data)


def test_a_group_needs_its_subset_column_and_rows_for_each_subtask(task_manager, tmp_path):
    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    row = {"question": "q?", "choices": ["a", "b", "c", "d"], "answer": 0}
    no_column = write("no_subject.jsonl", [row])
    with pytest.raises(ValueError, match=r"mmlu: the files have no 'subject' column .* 57 subtasks"):
        with_local_data(task_manager, {"mmlu": {"test": no_column, "dev": no_column}})
    one_subject = write("anatomy.jsonl", [{**row, "subject": "anatomy"}])
    with pytest.raises(ValueError, match=r"mmlu: no rows with subject == 'abstract_algebra' for mmlu_abstract_algebra"):
        with_local_data(task_manager, {"mmlu": {"test": one_subject, "dev": one_subject}})
    # a subtask's own entry wins over its group's, and a file without the column serves it whole
    local = with_local_data(task_manager, {"mmlu_anatomy": {"test": no_column, "dev": no_column}})
    assert local.task_index["mmlu_anatomy"].cfg["dataset_kwargs"]["data_files"]["test"] == no_column
    with pytest.raises(ValueError, match=r"ai2_arc: its subtasks read different Hub datasets"):
        with_local_data(task_manager, {"ai2_arc": {"test": no_column, "train": no_column}})
