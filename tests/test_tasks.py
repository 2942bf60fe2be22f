"""tasks/: tiny generators, the corpora, the record contract, the paper loaders and the CLI."""
import json
import random
import re
import time
import uuid

import pytest

import tasks
from tasks import corpus
from tasks.__main__ import main as cli_main
from tasks.biomed import build_domain
from tasks.world import build_world

ALL_TASKS = ["cola", "commonsense", "cpt_domain", "cpt_domain_qa", "cpt_general", "cpt_scratch", "e2e", "instruct",
             "math", "mrpc", "qnli", "rte", "sst2", "stsb", "uuid"]
SMALL = {"train": 40, "validation": 7, "test": 11}


@pytest.fixture(scope="module")
def tiny():
    """Every task at its default (tiny-profile) sizes, seed 0."""
    return {name: tasks.get(name).generate_tiny(0) for name in ALL_TASKS}


@pytest.fixture(scope="module")
def general_text():
    return corpus.general_corpus(0, 20_000)


def content_key(record):
    """What makes two records the same item."""
    if "text" in record:
        return (record["text"], record.get("text_pair"))
    if "fact" in record:
        return tuple(record["fact"])
    return (record["prompt"], record["target"]) if not record["prompt"] else record["prompt"]


# -- registry --------------------------------------------------------------------------------------
def test_registry_names_families_and_specs():
    assert tasks.available() == ALL_TASKS
    families = tasks.families()
    assert families["glue"] == ["cola", "mrpc", "qnli", "rte", "sst2", "stsb"]
    assert families["continual_pretraining"] == ["cpt_domain", "cpt_domain_qa", "cpt_general", "cpt_scratch"]
    assert sorted(n for names in families.values() for n in names) == ALL_TASKS
    assert len(families) == 7
    assert tasks.get("stsb").kind == "regression" and tasks.get("stsb").num_labels == 1
    assert tasks.get("cola").metrics == ["mcc"] and tasks.get("mrpc").metrics == ["acc", "f1"]
    assert tasks.get("commonsense").lm_eval_tasks[:2] == ["boolq", "piqa"]
    assert "social_iqa" in tasks.get("commonsense").lm_eval_tasks  # lm-eval's name for SIQA
    assert tasks.get("math").lm_eval_tasks == ["gsm8k", "minerva_math"]
    assert tasks.get("instruct").lm_eval_tasks == ["mmlu", "ifeval"]
    assert tasks.get("cpt_general").shares_train_with == "cpt_domain"
    scratch = tasks.get("cpt_scratch")
    assert (scratch.kind, scratch.metrics, scratch.lm_eval_tasks) == ("causal_lm", ["perplexity"], ["c4"])
    assert scratch.shares_train_with is None  # trained on its own, from a random init


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task 'glue_sst2'; known tasks: cola, .*sst2"):
        tasks.get("glue_sst2")


# -- tiny generators -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_TASKS)
def test_seed_determines_the_splits(name):
    spec = tasks.get(name)
    first, again, other = (spec.generate_tiny(seed, SMALL) for seed in (1, 1, 2))
    assert first == again
    assert first["test"] != other["test"] or first["train"] != other["train"]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_sizes_are_honoured(name):
    splits = tasks.get(name).generate_tiny(3, SMALL)
    assert {split: len(records) for split, records in splits.items()} == SMALL


@pytest.mark.parametrize("name", [n for n in ALL_TASKS if n != "uuid"])
def test_no_test_or_validation_item_is_in_train(tiny, name):
    splits = tiny[name]
    train = {content_key(r) for r in splits["train"]}
    for split in ("validation", "test"):
        assert not train & {content_key(r) for r in splits[split]}, split
    assert not {content_key(r) for r in splits["validation"]} & {content_key(r) for r in splits["test"]}


def test_uuid_pairs_are_mora_format_unique_and_evaluated_on_train(tiny):
    """MoRA's data (kongds/MoRA issue #18, the authors' comment of 2024-09-03; the repository at
    de5df31 has no UUID code): key and value are `str(uuid.uuid4())`, the text is
    `entry['key'] + ':' + entry['value']`, labels = input_ids (the whole sequence)."""
    from tasks.memorization import FORMAT_ONLY_CHAR_ACC, eval_prompt

    splits = tiny["uuid"]
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(pattern.match(str(uuid.uuid4())) for _ in range(200))  # what MoRA's generator writes
    train = splits["train"]
    strings = [r["key"] for r in train] + [r["value"] for r in train]
    assert all(pattern.match(s) and uuid.UUID(s).version == 4 and str(uuid.UUID(s)) == s for s in strings)
    assert len(set(strings)) == len(strings) == 2 * 500
    assert {s[19] for s in strings} == set("89ab")  # the variant nibble takes all four values
    for r in train:
        assert r["prompt"] == "" and r["target"] == r["key"] + ":" + r["value"] and r["answer"] == r["value"]
        assert eval_prompt(r) + r["value"] == r["target"]  # greedy decoding continues the training text
    assert FORMAT_ONLY_CHAR_ACC == pytest.approx(57 / 288)  # ≈ 19.8%: see test_metrics for the simulation
    pairs = {(r["key"], r["value"]) for r in train}
    # memorization is measured on trained pairs: validation/test sample the train pairs
    assert {(r["key"], r["value"]) for r in splits["test"]} == pairs
    assert {(r["key"], r["value"]) for r in splits["validation"]} < pairs


def solve(question):
    """Recompute a tiny math answer from the question text alone."""
    n = [int(x) for x in re.findall(r"\d+", question)]
    if "buys" in question and "more" in question:
        return n[0] + n[1]
    if "gives" in question and "to" in question and "packs" not in question:
        return n[0] - n[1]
    if "boxes" in question:
        return n[0] * n[1]
    if "equally" in question:
        assert n[0] % n[1] == 0
        return n[0] // n[1]
    if "packs" in question:
        return n[0] * n[1] - n[2]
    if "more" in question and "together" in question:
        return n[0] + n[0] + n[1]
    raise AssertionError(f"unknown problem form: {question}")


def test_math_answers_are_correct(tiny):
    step = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}
    for records in tiny["math"].values():
        for r in records:
            question = r["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:")
            assert r["answer"] == str(solve(question)), r
            steps = step.findall(r["target"])
            assert steps and all(ops[op](int(a), int(b)) == int(c) for a, op, b, c in steps)
            assert r["target"].endswith(f" #### {r['answer']}") and steps[-1][3] == r["answer"]


def test_e2e_records_have_several_references_realizing_the_mr(tiny):
    for split, records in tiny["e2e"].items():
        for r in records:
            assert len(r["references"]) >= 2 and len(set(r["references"])) == len(r["references"])
            assert r["target"] in r["references"]
            mr = dict(re.findall(r"(\w[\w ]*)\[([^\]]+)\]", r["prompt"]))
            for ref in r["references"]:
                assert mr["name"] in ref and mr.get("near", "") in ref
                assert mr.get("food", "").lower() in ref.lower()
    # train has one record per (MR, reference), as the E2E training data does
    train = tiny["e2e"]["train"]
    assert len({r["prompt"] for r in train}) < len(train)


def test_instruct_targets_pass_lm_eval_ifeval_checkers(tiny):
    checks = pytest.importorskip("evaluation.instruction_checks")
    ids, combined = set(), 0
    for records in tiny["instruct"].values():
        for r in records:
            checks.validate_check(r["check"])
            assert checks.follows(r["target"], r["check"]), r  # strict (so loose too)
            ids |= set(r["check"]["instruction_id_list"])
            combined += len(r["check"]["instruction_id_list"]) > 1
    assert ids == {"keywords:existence", "keywords:frequency", "keywords:forbidden_words",
                   "change_case:english_capital", "change_case:english_lowercase", "startend:end_checker",
                   "startend:quotation", "detectable_format:title", "detectable_format:number_bullet_lists",
                   "punctuation:no_comma", "length_constraints:number_words",
                   "length_constraints:nth_paragraph_first_word"}
    assert combined > 650  # most prompts combine instructions, so prompt and instruction rates differ
    test = tiny["instruct"]["test"]
    word_limit_only = [r["check"]["instruction_id_list"] == ["length_constraints:number_words"] for r in test]
    assert [checks.follows("Nothing like it", r["check"]) for r in test] == word_limit_only
    bullets = next(r for r in test if "detectable_format:number_bullet_lists" in r["check"]["instruction_id_list"])
    numbered = "\n".join(f"{i}. {line[2:]}" for i, line in enumerate(bullets["target"].splitlines(), start=1))
    assert not checks.follows(numbered, bullets["check"])  # IFEval counts * and - bullets, not "1."
    assert not checks.follows(bullets["target"] + "\n- " + bullets["check"]["kwargs"][1]["forbidden_words"][0],
                              bullets["check"])


def test_glue_labels_follow_glue_conventions(tiny):
    sst2 = {r["text"]: r["label"] for r in tiny["sst2"]["train"] + tiny["sst2"]["test"]}
    for text, label in sst2.items():
        negated = " not " in f" {text.lower()}" or text.lower().startswith(("nothing", "i did not"))
        if "but" not in text and any(w in text.lower() for w in ("great", "lovely", "excellent")):
            assert label == (0 if negated else 1), text
    for name in ("sst2", "mrpc", "cola", "qnli", "rte"):
        labels = [r["label"] for r in tiny[name]["train"]]
        assert set(labels) == {0, 1} and 0.25 < sum(labels) / len(labels) < 0.75, name
    world = build_world()
    for r in tiny["rte"]["test"]:  # 0 = entailment: the hypothesis restates a premise fact
        if "is a city in" in r["text"]:
            continue
        person = next(p for p in world.people if p in r["text_pair"])
        restated = [f for f in world.facts_about[person] if r["text_pair"] in world.statements(f)
                    and any(s in r["text"] for s in world.statements(f))]
        assert bool(restated) == (r["label"] == 0), r
    scores = [r["label"] for r in tiny["stsb"]["train"]]
    assert all(isinstance(s, float) and 0 <= s <= 5 for s in scores) and {0.0, 5.0} <= set(scores)


def test_sizes_beyond_the_item_space_and_bad_sizes_are_errors():
    with pytest.raises(ValueError, match="facts, one question each"):
        tasks.get("commonsense").generate_tiny(0, {"train": 5000})
    with pytest.raises(ValueError, match="unknown split"):
        tasks.get("math").generate_tiny(0, {"dev": 5})
    with pytest.raises(ValueError, match="positive integer"):
        tasks.get("math").generate_tiny(0, {"test": 0})
    with pytest.raises(ValueError, match="sample the"):
        tasks.get("uuid").generate_tiny(0, {"train": 10, "test": 20})


# -- the corpora -----------------------------------------------------------------------------------
def test_general_corpus_size_speed_and_vocabulary():
    start = time.perf_counter()
    docs = corpus.general_corpus(5, 20_000)
    assert time.perf_counter() - start < 5
    stats = corpus.corpus_stats(docs)
    assert 1_000_000 < stats["chars"] < 2_000_000
    assert stats["words"] < 5000  # modest vocabulary for a few-thousand-token BPE
    assert corpus.general_corpus(5, 300) == docs[:300]  # deterministic, and a prefix of longer corpora
    assert corpus.general_corpus(6, 300) != docs[:300]


def test_commonsense_answers_are_stated_in_the_general_corpus(tiny):
    n_docs = corpus.min_docs_for_all_facts()
    text = "\n".join(corpus.general_corpus(0, n_docs))
    world = build_world()
    for records in tiny["commonsense"].values():
        for r in records:
            fact = next(f for f in world.facts_about[r["fact"][0]] if f.relation == r["fact"][1])
            assert r["choices"][r["label"]] == " " + fact.object
            assert any(sentence in text for sentence in world.statements(fact)), fact
    # every fact, not only the sampled ones, once the corpus is long enough
    missing = [f for f in world.facts if not any(s in text for s in world.statements(f))]
    assert not missing


def test_domain_facts_are_absent_from_the_general_corpus_and_present_in_the_domain_corpus(tiny, general_text):
    text = "\n".join(general_text).lower()
    domain = build_domain()
    assert not [name for name in domain.vocabulary() if name.lower() in text]
    train_text = "\n".join(r["target"] for r in tiny["cpt_domain"]["train"])
    for r in tiny["cpt_domain_qa"]["test"]:
        fact = next(f for f in domain.facts_about[r["fact"][0]] if f.relation == r["fact"][1])
        assert any(s in train_text for s in domain.statements(fact))
    shared = [tiny[name]["train"] for name in ("cpt_domain", "cpt_domain_qa", "cpt_general")]
    assert [r["target"] for r in shared[0]] == [r["target"] for r in shared[1]] == [r["target"] for r in shared[2]]


def test_scratch_pretraining_text_is_general_text_with_disjoint_held_out_documents(tiny):
    splits = tiny["cpt_scratch"]
    assert all(r["prompt"] == "" and r["target"] for s in splits.values() for r in s)
    train = {r["target"] for r in splits["train"]}
    held = [r["target"] for s in ("validation", "test") for r in splits[s]]
    assert not train & set(held) and len(set(held)) == len(held) == 400
    # held-out documents of the general mixture, and a stream of its own: not the base model's corpus
    assert held == corpus.heldout_general_docs(0, 400)
    assert [r["target"] for r in splits["train"]] != corpus.general_corpus(0, 4000)
    start = time.perf_counter()
    tasks.get("cpt_scratch").generate_tiny(1)
    assert time.perf_counter() - start < 2


def test_heldout_text_and_tiny_eval_items_never_appear_in_the_general_corpus(tiny, general_text):
    docs = set(general_text)
    assert not docs & set(corpus.heldout_general_docs(0, 300))
    assert not set(corpus.domain_corpus(0, 2000)) & set(corpus.heldout_domain_docs(0, 300))
    text = "\n".join(general_text)
    # (about half of the sst2 and a third of the instruct *train* items do occur in the corpus)
    in_text = ([r["text"] for r in tiny["sst2"]["test"]] +
               [r["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:") for r in tiny["math"]["test"]] +
               ["Instruction: " + r["prompt"].split("\n")[1] + "\n" for r in tiny["instruct"]["test"]])
    assert not [item for item in in_text if item in text]
    # a restaurant document is one realization: compare whole documents
    assert not [ref for r in tiny["e2e"]["test"] for ref in r["references"] if ref in docs]


# -- files and validation --------------------------------------------------------------------------
def test_write_and_read_splits_round_trip(tmp_path, tiny):
    paths = tasks.write_splits(tiny["e2e"], tmp_path / "e2e", task="e2e")
    assert sorted(p.name for p in (tmp_path / "e2e").iterdir()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    assert tasks.read_split(paths["test"], "e2e") == tiny["e2e"]["test"]
    assert tasks.read_splits(tmp_path / "e2e", tasks.get("e2e")) == tiny["e2e"]


def test_missing_column_names_file_column_and_fix(tmp_path, tiny):
    tasks.write_splits(tiny["math"], tmp_path)
    path = tmp_path / "test.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[2])
    del broken["answer"]
    path.write_text("\n".join(lines[:2] + [json.dumps(broken)] + lines[3:]) + "\n")
    expected = rf"{re.escape(str(path))}: record 3 .* lacks column 'answer'.*python -m tasks"
    with pytest.raises(ValueError, match=expected):
        tasks.read_split(path, "math")


def test_empty_split_bad_json_and_bad_labels_are_errors(tmp_path, tiny):
    empty = tmp_path / "validation.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=r"validation.jsonl: split is empty.*regenerate"):
        tasks.read_split(empty, "sst2")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x", "label": 1}\n{"id": \n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        tasks.read_split(bad, "sst2")
    with pytest.raises(ValueError, match=r"label 2 is outside 0\.\.1"):
        tasks.validate_records([{"id": "a", "text": "x", "label": 2}], tasks.get("sst2"), "mem")
    record = dict(tiny["commonsense"]["test"][0], label=(tiny["commonsense"]["test"][0]["label"] + 1) % 4)
    with pytest.raises(ValueError, match=r"target' must equal choices\[label\]"):
        tasks.validate_records([record], tasks.get("commonsense"), "mem")
    with pytest.raises(ValueError, match="split 'test' is missing or empty"):
        tasks.write_splits({"train": [{"id": "a"}], "validation": [{"id": "b"}], "test": []}, tmp_path / "x")
    pair = tiny["uuid"]["test"][0]
    unhyphenated = dict(pair, value=pair["value"].replace("-", ""))
    with pytest.raises(ValueError, match="column 'value' must be a uuid4 string"):
        tasks.validate_records([unhyphenated], tasks.get("uuid"), "mem")
    old_style = dict(tiny["instruct"]["test"][0], check={"type": "lowercase"})
    with pytest.raises(ValueError, match="'check' must be a dict with 'instruction_id_list'"):
        tasks.validate_records([old_style], tasks.get("instruct"), "mem")
    assert not (tmp_path / "x" / "train.jsonl").exists()


# -- paper sources on local files in the Hub datasets' schemas -------------------------------------
def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


GLUE_ROWS = {
    "sst2": [{"sentence": "a charming film ", "label": 1, "idx": 0},
             {"sentence": "dull and flat ", "label": 0, "idx": 1}],
    "mrpc": [{"sentence1": "He said hi.", "sentence2": "He greeted us.", "label": 1, "idx": 0},
             {"sentence1": "It rained.", "sentence2": "It was sunny.", "label": 0, "idx": 1}],
    "cola": [{"sentence": "The dog barked.", "label": 1, "idx": 0},
             {"sentence": "Dog the barked.", "label": 0, "idx": 1}],
    "qnli": [{"question": "Who?", "sentence": "Ann did.", "label": 0, "idx": 0},
             {"question": "When?", "sentence": "Blue sky.", "label": 1, "idx": 1}],
    "rte": [{"sentence1": "Ann lives in Rome.", "sentence2": "Ann lives in Italy.", "label": 0, "idx": 0},
            {"sentence1": "Bo ran.", "sentence2": "Bo slept.", "label": 1, "idx": 1}],
    "stsb": [{"sentence1": "A man plays.", "sentence2": "A man is playing.", "label": 4.8, "idx": 0},
             {"sentence1": "A cat.", "sentence2": "A plane.", "label": 0.25, "idx": 1}],
}


def test_glue_loader_maps_each_subset(tmp_path):
    import pandas as pd
    for subset, rows in GLUE_ROWS.items():
        # the Hub's parquet layout: <subset>/<split>-00000-of-00001.parquet
        for split, offset in (("train", 0), ("validation", 100)):
            folder = tmp_path / subset
            folder.mkdir(exist_ok=True)
            pd.DataFrame([dict(r, idx=r["idx"] + offset) for r in rows]).to_parquet(
                folder / f"{split}-00000-of-00001.parquet")
        splits = tasks.get(subset).load_paper(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                                              validation_from="dev")   # all of train, to check the mapping
        text_col, pair_col = {"sst2": ("sentence", None), "cola": ("sentence", None),
                              "qnli": ("question", "sentence")}.get(subset, ("sentence1", "sentence2"))
        first = splits["train"][0]
        assert first["id"] == f"{subset}-train-0" and first["text"] == rows[0][text_col]
        assert first.get("text_pair") == (rows[0][pair_col] if pair_col else None)
        assert first["label"] == rows[0]["label"] and type(first["label"]) is (float if subset == "stsb" else int)
        assert splits["test"][1]["id"] == f"{subset}-validation-101"  # GLUE dev is the papers' test
        assert splits["validation"] == splits["test"]  # validation_from: dev, the papers' practice


def test_glue_loader_selects_on_a_held_out_part_of_train_by_default(tmp_path):
    """Never on the dev set it reports: a seeded tenth of train (1 to 1000 rows) is the validation split."""
    rows = [{"sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(50)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "dev.jsonl", [dict(r, idx=100 + r["idx"]) for r in rows[:6]])}
    splits = tasks.get("sst2").load_paper(data_files=files, cache_dir=str(tmp_path / "c"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [45, 5, 6]
    assert all(r["id"].startswith("sst2-train-") for r in splits["validation"])
    assert not {r["id"] for r in splits["validation"]} & {r["id"] for r in splits["test"]}
    again = tasks.get("sst2").load_paper(data_files=files, cache_dir=str(tmp_path / "c"))
    assert again["validation"] == splits["validation"]          # seeded
    other = tasks.get("sst2").load_paper(data_files=files, cache_dir=str(tmp_path / "c"), seed=1)
    assert other["validation"] != splits["validation"]
    with pytest.raises(ValueError, match="validation_from: dev selects on the dev set"):
        tasks.get("sst2").load_paper(data_files=files, validation_from="dev", validation_size=4)
    with pytest.raises(ValueError, match="validation_from='test'"):
        tasks.get("sst2").load_paper(data_files=files, validation_from="test")


def test_glue_loader_can_carve_validation_from_train(tmp_path):
    rows = [{"sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(10)]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "dev.jsonl", rows[:3])}
    splits = tasks.get("sst2").load_paper(data_files=files, validation_size=4, cache_dir=str(tmp_path / "c"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [6, 4, 3]
    assert not {r["id"] for r in splits["train"]} & {r["id"] for r in splits["validation"]}
    with pytest.raises(ValueError, match=r"reads splits \['train', 'validation'\]: pass data_files as \{split: path\}"):
        tasks.get("sst2").load_paper(data_files=files["train"])


def test_e2e_loader_groups_references_by_mr(tmp_path):
    mr_a, mr_b = "name[The Eagle], eatType[pub]", "name[Aromi], food[French]"
    train = [{"gem_id": "e2e_nlg-train-0", "meaning_representation": mr_a, "target": "The Eagle is a pub.",
              "references": []},
             {"gem_id": "e2e_nlg-train-1", "meaning_representation": mr_a, "target": "There is a pub, The Eagle.",
              "references": []}]
    test = [{"gem_id": f"e2e_nlg-test-{i}", "meaning_representation": mr, "target": ref, "references": refs}
            for i, (mr, ref, refs) in enumerate([
                (mr_a, "The Eagle is a pub.", ["The Eagle is a pub.", "A pub: The Eagle."]),
                (mr_a, "A pub: The Eagle.", ["The Eagle is a pub.", "A pub: The Eagle."]),
                (mr_b, "Aromi serves French food.", ["Aromi serves French food."])])]
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows)
             for split, rows in (("train", train), ("validation", test), ("test", test))}
    splits = tasks.get("e2e").load_paper(data_files=files, cache_dir=str(tmp_path / "c"))
    assert len(splits["train"]) == 2 and splits["train"][1]["target"] == "There is a pub, The Eagle."
    assert splits["train"][0]["prompt"] == mr_a + "\n"
    assert splits["train"][0]["references"] == ["The Eagle is a pub.", "There is a pub, The Eagle."]
    assert [(r["prompt"], r["references"]) for r in splits["test"]] == [
        (mr_a + "\n", ["The Eagle is a pub.", "A pub: The Eagle."]), (mr_b + "\n", ["Aromi serves French food."])]


def test_e2e_loader_keeps_repeated_references(tmp_path):
    """The official scorer (tuetschek/e2e-metrics) counts a reference written twice twice."""
    mr = "name[The Eagle], eatType[pub]"
    rows = [{"gem_id": f"e2e_nlg-x-{i}", "meaning_representation": mr, "target": ref, "references": refs}
            for i, (ref, refs) in enumerate([("The Eagle is a pub.", []), ("The Eagle is a pub.", []),
                                             ("A pub: The Eagle.", [])])]
    listed = [dict(r, references=["A pub.", "A pub.", "The Eagle."]) for r in rows]
    files = {"train": write_jsonl(tmp_path / "train.jsonl", rows),
             "validation": write_jsonl(tmp_path / "validation.jsonl", rows),
             "test": write_jsonl(tmp_path / "test.jsonl", listed)}
    splits = tasks.get("e2e").load_paper(data_files=files, cache_dir=str(tmp_path / "c"))
    assert splits["validation"][0]["references"] == ["The Eagle is a pub.", "The Eagle is a pub.", "A pub: The Eagle."]
    assert splits["test"][0]["references"] == ["A pub.", "A pub.", "The Eagle."]


def test_e2e_loader_rejects_files_in_another_schema(tmp_path):
    rows = [{"mr": "name[X]", "ref": "X."}]
    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", rows) for s in ("train", "validation", "test")}
    with pytest.raises(ValueError, match="lack column 'meaning_representation'"):
        tasks.get("e2e").load_paper(data_files=files, cache_dir=str(tmp_path / "c"))


ALPACA_HEAD = ("Below is an instruction that describes a task. Write a response that appropriately completes "
               "the request.\n\n### Instruction:\n")


def test_commonsense_170k_loader_uses_the_alpaca_template(tmp_path):
    rows = [{"instruction": f"Please choose the correct answer to question {i}.\n\nAnswer format: answer1/answer2",
             "input": "", "output": f"the correct answer is answer{i % 2 + 1}", "answer": f"answer{i % 2 + 1}"}
            for i in range(10)]
    path = tmp_path / "commonsense_170k.json"
    path.write_text(json.dumps(rows))  # LLM-Adapters ships one JSON array
    splits = tasks.get("commonsense").load_paper(data_files=str(path), validation_size=2, test_size=3,
                                                 cache_dir=str(tmp_path / "c"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [5, 2, 3]
    record = splits["train"][0]
    i = int(re.search(r"question (\d+)", record["prompt"]).group(1))
    assert record["prompt"] == ALPACA_HEAD + rows[i]["instruction"] + "\n\n### Response:\n"
    assert record["target"] == rows[i]["output"] and record["answer"] == rows[i]["answer"]
    with pytest.raises(ValueError, match="no canonical Hub id"):
        tasks.get("commonsense").load_paper()


def test_metamathqa_loader_extracts_the_answer(tmp_path):
    rows = [{"type": "GSM_Rephrased", "query": f"What is {i} + {i}?", "original_question": f"{i}+{i}?",
             "response": f"We add: {i} + {i} = {2 * i}.\nThe answer is: {2 * i}"} for i in range(8)]
    path = write_jsonl(tmp_path / "MetaMathQA-395K.jsonl", rows)
    splits = tasks.get("math").load_paper(data_files=path, validation_size=1, test_size=2,
                                          cache_dir=str(tmp_path / "c"))
    for records in splits.values():
        for r in records:
            i = int(re.search(r"What is (\d+)", r["prompt"]).group(1))
            assert r["prompt"] == ALPACA_HEAD + f"What is {i} + {i}?\n\n### Response:\n"
            assert r["answer"] == str(2 * i) and r["target"].endswith(f"The answer is: {2 * i}")


def test_tulu_loader_makes_one_record_per_assistant_turn(tmp_path):
    rows = [{"dataset": "sharegpt", "id": f"c{i}", "messages": [
        {"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": f"Hello {i}!"},
        {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye."}]} for i in range(6)]
    path = write_jsonl(tmp_path / "tulu.jsonl", rows)
    splits = tasks.get("instruct").load_paper(data_files=path, validation_size=1, test_size=1,
                                              cache_dir=str(tmp_path / "c"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [8, 2, 2]
    first, second = splits["train"][:2]
    n = first["source"].split("/c")[1].split("#")[0]
    assert first["prompt"] == f"<|user|>\nHi {n}\n<|assistant|>\n" and first["target"] == f"Hello {n}!"
    assert second["prompt"] == f"<|user|>\nHi {n}\n<|assistant|>\nHello {n}!\n<|user|>\nBye\n<|assistant|>\n"
    assert second["target"] == "Goodbye."
    # a conversation stays in one split: no held-out prompt contains a train target
    held = " ".join(r["prompt"] for s in ("validation", "test") for r in splits[s])
    assert not [r for r in splits["train"] if r["target"] != "Goodbye." and r["target"] in held]


def test_alpaca_cleaned_loader_uses_the_input_template(tmp_path):
    rows = [{"instruction": f"Translate {i}.", "input": "hola" if i % 2 else "", "output": f"out {i}"}
            for i in range(6)]
    path = write_jsonl(tmp_path / "alpaca_data_cleaned.jsonl", rows)
    splits = tasks.get("instruct").load_paper(dataset="alpaca_cleaned", data_files=path, validation_size=1,
                                              test_size=1, cache_dir=str(tmp_path / "c"))
    by_target = {r["target"]: r["prompt"] for s in splits.values() for r in s}
    assert by_target["out 0"] == ALPACA_HEAD + "Translate 0.\n\n### Response:\n"
    assert by_target["out 1"].startswith("Below is an instruction that describes a task, paired with an input")
    assert by_target["out 1"].endswith("### Instruction:\nTranslate 1.\n\n### Input:\nhola\n\n### Response:\n")
    with pytest.raises(ValueError, match="unknown dataset 'ultrafeedback'"):
        tasks.get("instruct").load_paper(dataset="ultrafeedback", data_files=path)


def test_continual_pretraining_loaders(tmp_path):
    cache = str(tmp_path / "c")
    domain = {"data_files": write_jsonl(tmp_path / "pubmed.jsonl",
                                        [{"pmid": i, "abstract": f"Abstract {i} about kinases."} for i in range(12)]),
              "text_column": "abstract", "validation_size": 2, "test_size": 2, "cache_dir": cache}
    c4 = write_jsonl(tmp_path / "c4-validation.jsonl", [{"text": f"General page {i}.", "timestamp": "2019-04-25",
                                                         "url": f"https://example.com/{i}"} for i in range(5)])
    pubmedqa = write_jsonl(tmp_path / "pqa_labeled.jsonl", [
        {"pubid": 100 + i, "question": f"Does drug {i} work?",
         "context": {"contexts": [f"Background {i}.", "Results."], "labels": ["BACKGROUND", "RESULTS"],
                     "meshes": ["Humans"], "reasoning_required_pred": ["yes"], "reasoning_free_pred": ["yes"]},
         "long_answer": "It does.", "final_decision": ["yes", "no", "maybe"][i % 3]} for i in range(6)])
    dom = tasks.get("cpt_domain").load_paper(**domain)
    assert [len(dom[s]) for s in ("train", "validation", "test")] == [8, 2, 2]
    assert all(r["prompt"] == "" and r["target"].startswith("Abstract") for s in dom.values() for r in s)
    gen = tasks.get("cpt_general").load_paper(domain=domain, validation_size=2,
                                              general={"data_files": c4, "cache_dir": cache})
    assert gen["train"] == [dict(r, id=r["id"].replace("cpt_domain", "cpt_general")) for r in dom["train"]]
    assert [r["target"] for r in gen["test"]] == ["General page 2.", "General page 3.", "General page 4."]
    qa = tasks.get("cpt_domain_qa").load_paper(domain=domain, validation_size=3,
                                               qa={"data_files": pubmedqa, "cache_dir": cache})
    first = qa["validation"][0]
    assert first["prompt"] == "Abstract: Background 0.\nResults.\nQuestion: Does drug 0 work?\nAnswer:"
    assert first["choices"] == [" yes", " no", " maybe"] and first["label"] == 0 and first["target"] == " yes"
    assert [r["label"] for r in qa["test"]] == [0, 1, 2]
    with pytest.raises(ValueError, match="domain corpus .*no source"):
        tasks.get("cpt_domain").load_paper()


def test_scratch_loader_reads_c4_train_and_validation(tmp_path):
    def c4_rows(split, n):  # allenai/c4's schema
        return [{"text": f"{split} page {i}." if i != 1 else "", "timestamp": "2019-04-25 12:57:54",
                 "url": f"https://example.com/{split}/{i}"} for i in range(n)]

    files = {split: write_jsonl(tmp_path / f"c4-{split}.jsonl", c4_rows(split, 8)) for split in ("train", "validation")}
    splits = tasks.get("cpt_scratch").load_paper(data_files=files, max_rows=5, validation_size=2, test_size=3,
                                                 cache_dir=str(tmp_path / "c"))
    # the first max_rows train rows (the empty text dropped); held-out text from the validation split
    assert [r["target"] for r in splits["train"]] == ["train page 0.", "train page 2.", "train page 3.",
                                                      "train page 4."]
    assert [r["target"] for r in splits["validation"]] == ["validation page 0.", "validation page 2."]
    assert [r["target"] for r in splits["test"]] == ["validation page 3.", "validation page 4."]
    assert all(r["prompt"] == "" for s in splits.values() for r in s)
    with pytest.raises(ValueError, match=r"pass data_files as \{split: path\}"):
        tasks.get("cpt_scratch").load_paper(data_files=files["train"])
    with pytest.raises(ValueError, match="leaves no test rows; lower validation_size"):
        tasks.get("cpt_scratch").load_paper(data_files=files, validation_size=7, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="drop split="):
        tasks.get("cpt_scratch").load_paper(data_files=files, split="train")


def test_uuid_paper_source_is_the_generator_at_scale():
    splits = tasks.get("uuid").load_paper(n_pairs=300, validation_size=30)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [300, 30, 300]
    assert splits["train"][0]["key"] == tasks.get("uuid").generate_tiny(0, {"train": 300, "validation": 1,
                                                                            "test": 1})["train"][0]["key"]


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_writes_tiny_and_paper_splits(tmp_path, capsys):
    assert cli_main(["--task", "rte", "--seed", "4", "--out", str(tmp_path / "rte"),
                     "--sizes", "train=20,validation=5,test=6"]) == 0
    assert len(tasks.read_split(tmp_path / "rte" / "test.jsonl", "rte")) == 6
    assert tasks.read_split(tmp_path / "rte" / "train.jsonl", "rte") == tasks.get("rte").generate_tiny(
        4, {"train": 20, "validation": 5, "test": 6})["train"]
    data = tmp_path / "glue"
    for split in ("train", "validation"):
        write_jsonl(data / f"{split}.jsonl", GLUE_ROWS["cola"])
    assert cli_main(["--task", "cola", "--source", "paper", "--data-dir", str(data), "--out", str(tmp_path / "cola"),
                     "--option", f"cache_dir={tmp_path / 'c'}"]) == 0
    assert tasks.read_split(tmp_path / "cola" / "test.jsonl", "cola")[1]["text"] == "Dog the barked."
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--task", "sst3", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "known tasks" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--help"])
    assert exit_info.value.code == 0 and "--source" in capsys.readouterr().out


LEE = {"distribution": "gensim", "path": "gensim/test/test_data/lee_background.cor", "encoding": "latin-1"}


def test_general_text_from_a_file_a_wheel_ships():
    """config/real_forgetting.yaml's forgetting probe: the Lee background corpus (300 ABC news articles, one per
    line, Latin-1) inside the gensim 4.4.0 wheel, installed with --no-deps for its data."""
    from tasks import cpt, hub
    rows = hub.package_lines(**LEE)
    assert len(rows) == 300 and rows[0]["text"].startswith("Hundreds of people have been forced to vacate")
    assert sum(len(r["text"].split()) for r in rows) == 59_890
    splits = cpt.load_general(general={"package_file": LEE}, validation_size=20, test_size=60)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [220, 20, 60]
    assert splits["test"][0]["target"] == rows[20]["text"] and splits["validation"][0]["prompt"] == ""
    # no domain: the train split is the general text left over (never trained on: a probe)
    assert {r["target"] for r in splits["train"]}.isdisjoint(r["target"] for r in splits["test"])
    tasks.get("cpt_general").load_paper(general={"package_file": LEE}, validation_size=20, test_size=60)


def test_package_file_errors_name_the_fix():
    from tasks import hub
    with pytest.raises(ValueError, match="pip install --no-deps no-such-dist"):
        hub.package_lines("no-such-dist", "x.txt")
    with pytest.raises(ValueError, match=r"'gensim/nope.cor' is not a file of the installed wheel gensim==4\.4\.0 "
                                         r"\(its \.cor files: .*lee_background\.cor"):
        hub.package_lines("gensim", "gensim/nope.cor")
    with pytest.raises(ValueError, match="package_file takes"):
        hub.source_rows({"package_file": LEE, "hub_id": "allenai/c4"}, "general text", ("text",))
    from tasks import cpt
    with pytest.raises(ValueError, match="must leave test rows and train rows of the 300"):
        cpt.load_general(general={"package_file": LEE}, validation_size=100, test_size=200)


def test_uuid_format_floor_is_what_a_well_formed_guess_scores():
    """19.8 %: the expected character accuracy of a random uuid4 against another (hyphens and the
    version digit always, the variant digit 1 in 4, the other 30 digits 1 in 16)."""
    import uuid
    from evaluation.metrics import char_accuracy
    from tasks.memorization import format_floor_char_acc

    rng = random.Random(0)
    pairs = [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), str(uuid.UUID(int=rng.getrandbits(128), version=4)))
             for _ in range(20000)]
    measured = 100 * sum(char_accuracy(a, b) for a, b in pairs) / len(pairs)
    assert format_floor_char_acc() == pytest.approx(19.79, abs=0.01)
    assert measured == pytest.approx(format_floor_char_acc(), abs=0.15)
    assert tasks.get("uuid").floors == {"char_acc": format_floor_char_acc()}
