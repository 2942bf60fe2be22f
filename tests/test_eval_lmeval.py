"""evaluate_run end to end through lm-eval, with tiny randomly initialised models.

Each metric in eval.json is recomputed here straight from the model's own outputs (log-probs,
greedy tokens, classifier logits), without lm-eval.
"""

import json
import random
import uuid

import pytest
from pathlib import Path
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from evaluation import build_task_configs, evaluate_run, metrics
from evaluation.suite_tasks import SUITE_TASKS, TASKS_DIR

torch.set_num_threads(2)
WORDS = "the a cat dog eats runs near river cheap pub food family friendly city centre serves".split()


def sentence(rng, n):
    return " ".join(rng.choices(WORDS, k=n))


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(0)
    lines = [sentence(rng, 12) for _ in range(300)] + [
        f"{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(200)
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")


def tiny_llama(tokenizer, model_class=LlamaForCausalLM, **config):
    torch.manual_seed(0)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **config,
    )  # fmt: skip
    return model_class(llama).eval()


@pytest.fixture(scope="module")
def causal_lm(tokenizer):
    return tiny_llama(tokenizer)


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path.parent


def load_strict_json(path):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def result(eval_json, task, metric):
    return eval_json["results"][task][f"{metric},none"]


def check_eval_json(out_path, task, n_docs, provenance, original=None):
    eval_json = load_strict_json(out_path)
    assert {
        "results",
        "configs",
        "n-samples",
        "versions",
        "higher_is_better",
        "provenance",
        "lorabench",
    } <= set(eval_json)
    assert eval_json["provenance"] == provenance
    assert eval_json["n-samples"][task] == {"original": original or n_docs, "effective": n_docs}
    assert eval_json["configs"][task]["dataset_kwargs"]["data_files"]["test"].endswith(".jsonl")
    assert [p.name for p in out_path.parent.iterdir() if p.name.endswith(".tmp")] == []  # atomic write
    return eval_json


# -- causal LM: log-likelihoods and greedy decoding by hand ---------------------------------------
@torch.no_grad()
def token_logprobs(model, ids):
    """log p(ids[i] | ids[:i]) for i >= 1."""
    logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]


@torch.no_grad()
def greedy(model, tokenizer, prompt, max_new_tokens, stop):
    """Argmax decoding, one token at a time (KV-cached), cut at `stop` or end-of-sequence."""
    out = model(torch.tensor([tokenizer.encode(prompt)]), use_cache=True)
    new = []
    for _ in range(max_new_tokens):
        next_id = int(out.logits[0, -1].argmax())
        if next_id == tokenizer.eos_token_id:
            break
        new.append(next_id)
        if stop in tokenizer.decode(new):
            break
        out = model(torch.tensor([[next_id]]), past_key_values=out.past_key_values, use_cache=True)
    return tokenizer.decode(new, skip_special_tokens=True).split(stop)[0]


def test_multiple_choice_accuracy_matches_argmax_of_summed_logprobs(tmp_path, tokenizer, causal_lm):
    rng = random.Random(1)
    records = []
    for i in range(60):
        choices = [" " + sentence(rng, rng.randint(1, 4)) for _ in range(4)]
        records.append(
            {
                "id": f"mc{i}",
                "prompt": sentence(rng, 6),
                "choices": choices,
                "label": i % 4,
                "target": choices[i % 4],
            }
        )
    data_dir = write_jsonl(tmp_path / "data" / "test.jsonl", records)
    provenance = {"seed": 0, "method": "lora"}
    out = tmp_path / "run" / "eval.json"
    evaluate_run(causal_lm, tokenizer, "commonsense", data_dir, out, provenance=provenance, batch_size=8)

    hits = hits_norm = 0
    for r in records:
        context = tokenizer.encode(r["prompt"])
        scores = []
        for choice in r["choices"]:
            whole = tokenizer.encode(r["prompt"] + choice)
            assert whole[: len(context)] == context
            scores.append(float(token_logprobs(causal_lm, whole)[len(context) - 1 :].sum()))
        hits += max(range(4), key=lambda k: scores[k]) == r["label"]
        hits_norm += max(range(4), key=lambda k: scores[k] / len(r["choices"][k])) == r["label"]
    eval_json = check_eval_json(out, "lorabench_commonsense", 60, provenance)
    assert result(eval_json, "lorabench_commonsense", "acc") == pytest.approx(hits / 60)
    assert result(eval_json, "lorabench_commonsense", "acc_norm") == pytest.approx(hits_norm / 60)


def test_uuid_char_accuracy_matches_greedy_decoding(tmp_path, tokenizer, causal_lm):
    rng = random.Random(2)
    records = []
    for i in range(30):
        key, value = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2))  # MoRA's format
        records.append({"id": f"u{i}", "key": key, "value": value, "prompt": "", "target": f"{key}:{value}"})
    out = tmp_path / "eval.json"
    evaluate_run(causal_lm, tokenizer, "uuid", write_jsonl(tmp_path / "d" / "test.jsonl", records), out)

    # scored on the first 36 generated characters, the length of a uuid
    generations = [greedy(causal_lm, tokenizer, f"{r['key']}:", 64, "\n")[:36] for r in records]
    char_acc = sum(metrics.char_accuracy(g, r["value"]) for g, r in zip(generations, records)) / 30
    exact = sum(g == r["value"] for g, r in zip(generations, records)) / 30
    eval_json = check_eval_json(out, "lorabench_uuid", 30, {})
    assert result(eval_json, "lorabench_uuid", "char_acc") == pytest.approx(char_acc)
    assert result(eval_json, "lorabench_uuid", "exact_match") == exact


def test_instruction_pass_rates_match_ifeval_on_greedy_generations(tmp_path, tokenizer, causal_lm):
    from lm_eval.tasks.ifeval.utils import process_results

    rng = random.Random(3)
    checks = [  # instructions a random model's output can pass or fail
        {"instruction_id_list": ["keywords:forbidden_words", "punctuation:no_comma"],
         "kwargs": [{"forbidden_words": ["cat"]}, {}]},
        {"instruction_id_list": ["keywords:existence", "length_constraints:number_words"],
         "kwargs": [{"keywords": ["the"]}, {"num_words": 40, "relation": "at least"}]},
        {"instruction_id_list": ["detectable_format:number_bullet_lists"], "kwargs": [{"num_bullets": 2}]},
    ]
    records = [{"id": f"i{i}", "prompt": sentence(rng, 5) + "\n", "target": "x", "check": checks[i % 3]}
               for i in range(9)]
    out = tmp_path / "eval.json"
    evaluate_run(causal_lm, tokenizer, "instruct", write_jsonl(tmp_path / "d" / "test.jsonl", records), out)

    judged = [process_results({"key": 0, "prompt": r["prompt"], **r["check"]},
                              [greedy(causal_lm, tokenizer, r["prompt"], 128, "\x00")]) for r in records]
    eval_json = check_eval_json(out, "lorabench_instruct", 9, {})
    for ours, theirs in (("prompt_pass_rate", "prompt_level_strict_acc"), ("prompt_pass_rate_loose", "prompt_level_loose_acc")):
        assert result(eval_json, "lorabench_instruct", ours) == pytest.approx(sum(j[theirs] for j in judged) / 9)
    for ours, theirs in (("inst_pass_rate", "inst_level_strict_acc"), ("inst_pass_rate_loose", "inst_level_loose_acc")):
        flat = [passed for j in judged for passed in j[theirs]]  # 15 instructions, each counted once
        assert len(flat) == 15
        assert result(eval_json, "lorabench_instruct", ours) == pytest.approx(sum(flat) / 15)
    assert 0 < result(eval_json, "lorabench_instruct", "inst_pass_rate") < 1


def test_e2e_metrics_match_greedy_generations(tmp_path, tokenizer, causal_lm):
    rng = random.Random(3)
    prompts = [f"name[{rng.choice(WORDS)}] food[{rng.choice(WORDS)}]\n" for _ in range(20)]
    generations = [greedy(causal_lm, tokenizer, prompt, 24, "\n").strip() for prompt in prompts]
    records = []
    for i, (prompt, generated) in enumerate(zip(prompts, generations)):
        # References that overlap the model's own output, so every metric has something to count.
        near_miss = " ".join(generated.split()[:-1] + [rng.choice(WORDS)])
        refs = [r for r in (near_miss, sentence(rng, 6), generated if i % 3 == 0 else "") if r.strip()]
        records.append({"id": f"e{i}", "prompt": prompt, "target": refs[0], "references": refs})
    out = tmp_path / "eval.json"
    data_dir = write_jsonl(tmp_path / "d" / "test.jsonl", records)
    evaluate_run(causal_lm, tokenizer, "e2e", data_dir, out, limit=16, max_gen_toks=24)

    expected = metrics.e2e_scores(generations[:16], [r["references"] for r in records[:16]])
    assert min(expected.values()) > 0, expected
    eval_json = check_eval_json(out, "lorabench_e2e", 16, {}, original=20)
    assert eval_json["configs"]["lorabench_e2e"]["generation_kwargs"]["max_gen_toks"] == 24
    for name, value in expected.items():
        assert result(eval_json, "lorabench_e2e", name) == pytest.approx(value, abs=1e-9), name


def test_perplexity_matches_summed_token_nll(tmp_path, tokenizer, causal_lm):
    rng = random.Random(4)
    domain = [{"id": f"p{i}", "prompt": "", "target": sentence(rng, rng.randint(10, 40))} for i in range(30)]
    general = [{"id": f"g{i}", "prompt": "", "target": sentence(rng, 15)} for i in range(20)]
    data_dir = write_jsonl(tmp_path / "d" / "test.jsonl", domain)
    write_jsonl(data_dir / "test_general.jsonl", general)
    out = tmp_path / "eval.json"
    eval_json = evaluate_run(causal_lm, tokenizer, "cpt_domain", data_dir, out)
    assert eval_json == load_strict_json(out)

    for task, records in (
        ("lorabench_cpt_domain", domain),
        ("lorabench_cpt_domain_general", general),
    ):
        nll = n_tokens = n_words = 0
        for r in records:
            ids = tokenizer.encode(r["target"])
            # lm-eval conditions the first token on the prefix token (EOS here: no BOS)
            nll -= float(token_logprobs(causal_lm, [tokenizer.eos_token_id] + ids).sum())
            n_tokens, n_words = n_tokens + len(ids), n_words + len(r["target"].split())
        assert result(eval_json, task, "token_perplexity") == pytest.approx(
            metrics.perplexity(nll, n_tokens), rel=1e-5
        )
        assert result(eval_json, task, "word_perplexity") == pytest.approx(
            metrics.perplexity(nll, n_words), rel=1e-5
        )


# -- sequence classifiers through the lorabench-classifier wrapper --------------------------------
@torch.no_grad()
def classifier_outputs(model, tokenizer, records):
    return [model(**tokenizer(r["text"], r.get("text_pair"), return_tensors="pt")).logits[0] for r in records]


def test_classifier_accuracy_and_f1_match_head_argmax(tmp_path, tokenizer):
    classifier = tiny_llama(tokenizer, LlamaForSequenceClassification, num_labels=2)
    rng = random.Random(5)
    records = [
        {
            "id": f"c{i}",
            "text": sentence(rng, rng.randint(3, 12)),
            "text_pair": sentence(rng, 5),
            "label": rng.randint(0, 1),
        }
        for i in range(60)
    ]
    out = tmp_path / "eval.json"
    evaluate_run(
        classifier, tokenizer, "mrpc", write_jsonl(tmp_path / "d" / "test.jsonl", records), out, batch_size=16
    )

    predictions = [int(logits.argmax()) for logits in classifier_outputs(classifier, tokenizer, records)]
    golds = [r["label"] for r in records]
    eval_json = check_eval_json(out, "lorabench_mrpc", 60, {})
    assert result(eval_json, "lorabench_mrpc", "acc") == pytest.approx(metrics.accuracy(golds, predictions))
    assert result(eval_json, "lorabench_mrpc", "f1") == pytest.approx(metrics.f1_binary(golds, predictions))


def test_regression_head_correlations(tmp_path, tokenizer):
    regressor = tiny_llama(tokenizer, LlamaForSequenceClassification, num_labels=1)
    rng = random.Random(6)
    records = [
        {"id": f"s{i}", "text": sentence(rng, 6), "text_pair": sentence(rng, 6), "label": rng.uniform(0, 5)}
        for i in range(40)
    ]
    out = tmp_path / "eval.json"
    evaluate_run(regressor, tokenizer, "stsb", write_jsonl(tmp_path / "d" / "test.jsonl", records), out)

    scores = [float(logits[0]) for logits in classifier_outputs(regressor, tokenizer, records)]
    golds = [r["label"] for r in records]
    eval_json = check_eval_json(out, "lorabench_stsb", 40, {})
    assert result(eval_json, "lorabench_stsb", "pearson") == pytest.approx(
        metrics.pearson(scores, golds), abs=1e-5
    )
    assert result(eval_json, "lorabench_stsb", "spearman") == pytest.approx(
        metrics.spearman(scores, golds), abs=1e-5
    )


# -- task configs and bad input ------------------------------------------------------------------
def test_templates_are_indexed_by_lm_eval_and_configs_point_at_the_run_data(tmp_path):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    templates = {spec.template for spec in SUITE_TASKS.values()}
    assert templates <= set(manager.all_tasks)

    record = {"id": "1", "text": "a cat", "label": 2}
    data_dir = write_jsonl(tmp_path / "validation_matched.jsonl", [record])
    write_jsonl(data_dir / "validation_mismatched.jsonl", [record])
    configs = build_task_configs("mnli", data_dir, split="validation")
    assert [c["task"] for c in configs] == ["lorabench_mnli_matched", "lorabench_mnli_mismatched"]
    assert configs[0]["dataset_kwargs"]["data_files"]["test"] == str(
        (data_dir / "validation_matched.jsonl").resolve()
    )
    assert configs[0]["doc_to_choice"] == ["0", "1", "2"]
    loaded = manager.load(configs)["tasks"]
    assert loaded["lorabench_mnli_matched"].doc_to_choice(record) == ["0", "1", "2"]


class UntouchableModel:
    """Any attribute access means model work started before the input was checked."""

    def __getattr__(self, name):
        raise AssertionError(f"model.{name} used before input validation")


@pytest.mark.parametrize(
    "task, files, message",
    [
        ("summarization", {}, "unknown suite task 'summarization'; known: .*commonsense.*e2e"),
        ("e2e", {}, r"data file .*test\.jsonl .* not found"),
        (
            "e2e",
            {"test.jsonl": [{"id": "1", "prompt": "p", "target": "t"}]},
            r"test\.jsonl:1 \(id='1'\): missing required column 'references'",
        ),
        ("commonsense", {"test.jsonl": []}, r"test\.jsonl is empty"),
        (
            "commonsense",
            {"test.jsonl": [{"id": "1", "prompt": "p", "choices": ["a"], "label": 3}]},
            "not an index into its 1 choices",
        ),
        (
            "instruct",
            {"test.jsonl": [{"id": "1", "prompt": "p", "target": "t",
                             "check": {"instruction_id_list": ["rhymes"], "kwargs": [{}]}}]},
            "unknown instruction id 'rhymes'",
        ),
        ("sst2", {}, "needs a sequence classifier"),
    ],
)
def test_bad_input_fails_before_model_work(tmp_path, task, files, message):
    for name, records in files.items():
        write_jsonl(tmp_path / name, records)
    with pytest.raises(ValueError, match=message):
        evaluate_run(UntouchableModel(), None, task, tmp_path, tmp_path / "eval.json")
    assert not (tmp_path / "eval.json").exists()


def test_builtin_lm_eval_tasks_go_to_the_same_call(tmp_path, tokenizer, causal_lm, monkeypatch):
    """Paper profiles pass lm-eval's own tasks by name; offline, only the call is checked."""
    import evaluation.run as run

    class FakeTaskManager:
        def __init__(self, include_path, include_defaults):
            self.include_path, self.include_defaults = include_path, include_defaults
            self.all_tasks = ["boolq", "arc_easy", "gsm8k"]

    calls = []

    def fake_simple_evaluate(**kwargs):
        calls.append(kwargs)
        return {"results": {}, "configs": {}, "n-samples": {}}

    monkeypatch.setattr(run, "TaskManager", FakeTaskManager)
    monkeypatch.setattr(run, "simple_evaluate", fake_simple_evaluate)
    data_dir = write_jsonl(
        tmp_path / "d" / "test.jsonl", [{"id": "1", "prompt": "q", "target": "#### 4", "answer": "4"}]
    )
    run.evaluate_run(
        causal_lm, tokenizer, "math", data_dir, tmp_path / "eval.json", lm_eval_tasks=["gsm8k", "boolq"]
    )

    (call,) = calls
    # Only the lm-eval folders defining the named tasks are indexed, the suite's own last (it overrides).
    assert not call["task_manager"].include_defaults
    assert [Path(p).name for p in call["task_manager"].include_path] == ["gsm8k", "super_glue", "tasks"]
    assert call["task_manager"].include_path[-1] == str(TASKS_DIR)
    assert [t if isinstance(t, str) else t["task"] for t in call["tasks"]] == [
        "lorabench_math",
        "gsm8k",
        "boolq",
    ]
    assert call["model"].model is causal_lm  # the in-memory model, wrapped by HFLM
    assert load_strict_json(tmp_path / "eval.json")["lorabench"]["lm_eval_tasks"] == ["gsm8k", "boolq"]
    with pytest.raises(ValueError, match="unknown lm-eval tasks"):
        run.evaluate_run(
            causal_lm, tokenizer, None, None, tmp_path / "eval2.json", lm_eval_tasks=["no_such_task"]
        )
