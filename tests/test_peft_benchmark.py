"""PEFT's MetaMathQA benchmark (huggingface/peft @ 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40,
method_comparison/MetaMathQA) as the suite runs it: config/paper/peft_method_comparison.yaml,
evaluation/peft_benchmark.py, tasks/arithmetic.py's options for it.

- Answer extraction: every expected value below is what their utils.py parse_answer() and
  get_accuracy() return on that text at that commit (run on each case once, outside this
  repository; their code is not copied here).
- Forgetting: the general-text loss lm-eval computes through `peft_wiki_loss` equals a direct
  computation of theirs (BOS + 768 tokens at most, left-padded batches of 4, every token after BOS,
  pooled) on a tiny Llama-3.2-architecture model whose tokenizer adds BOS as Llama-3.2's does.
- The profile: every variant is a valid config of the pinned peft, and the reference rows are
  their results/*.json numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evaluation import peft_benchmark as pb

ROOT = Path(__file__).resolve().parent.parent
PEFT_COMMIT = "5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40"
PROFILE = ROOT / "config" / "paper" / "peft_method_comparison.yaml"
PROMPT = "Question: Tom has 3 apples. Think step by step.\nAnswer:"

# (prediction = prompt + generation, GSM8K reference, their parse_answer(prediction),
#  their parse_answer(reference), their get_accuracy([prediction], [reference]))
CASES = [
    (PROMPT + " 3 + 13 = 16.\nThe answer is: 16", "He has 16.\n#### 16", "16", "16", 1.0),
    (PROMPT + " $4^2 = \\boxed{16}$.The answer is: 16", "#### 16", "16", "16", 1.0),
    (PROMPT + " The answer is 5.", "#### 5", "5", "5", 1.0),                     # trailing "." stripped
    (PROMPT + " The answer is: 50%", "#### 50", "50", "50", 1.0),                # "%" dropped
    (PROMPT + " The answer is: $1.50", "#### 1.5", "1.50", "1.5", 1.0),          # "$" dropped, Decimal
    (PROMPT + " The answer is: 20/14", "#### 1.4285714285714286", "20/14", "1.4285714285714286", 1.0),
    (PROMPT + " The answer is: 3/0", "#### 3", "3/0", "3", 0.0),                 # no number, string compare
    (PROMPT + " #### 7\nThe answer is: 8", "#### 7", "8", "7", 0.0),             # delimiter order, not text order
    (PROMPT + " The answer is: 3. The answer is: 4", "#### 4", "4", "4", 1.0),   # the last occurrence
    (PROMPT + " The answer is: 12\n\nQuestion: what next? The answer", "#### 12", "12", "12", 1.0),
    (PROMPT + " The final answer is 7", "#### 7", "7", "7", 1.0),
    (PROMPT + " no idea", "#### 7", None, "7", 0.0),
    (PROMPT + " The answer is: 1/2/3", "#### 1/2/3", "1/2/3", "1/2/3", 1.0),    # strings equal
    (PROMPT + " The answer is: 0.5", "#### 1/2", "0.5", "1/2", 1.0),
    (PROMPT + " The answer is: 1,000", "#### 1,000", "1,000", "1,000", 1.0),
    (PROMPT + " The answer is: 1000", "#### 1,000", "1000", "1,000", 0.0),      # "1,000" is no number
    (PROMPT + " The answer is: -3", "#### -3", "-3", "-3", 1.0),
    (PROMPT + " The answer is: 1e3", "#### 1000", "1e3", "1000", 1.0),
    (PROMPT + " The answer is: 16!?", "#### 16", "16", "16", 1.0),
    (PROMPT + " nothing", "#### abc", None, "abc", 0.0),
    (PROMPT + " The answer is: abc", "#### abc", "abc", "abc", 1.0),
    (PROMPT + " The answer is:16", "#### 16", None, "16", 0.0),                 # no delimiter matches
    (PROMPT + " The answer is  16", "#### 16", "16", "16", 1.0),
]
# their get_accuracy over all the cases at once
ALL_CASES_ACCURACY = 0.7391304347826086
# their data.py: np.random.seed(0); shuffle(arange(7473)) (len(openai/gsm8k main train)); first 50
VALID_FIRST = [6447, 6827, 39, 4229, 5594, 2200, 1029, 6375, 2006, 3925]


@pytest.mark.parametrize("prediction, response, parsed, parsed_gold, correct", CASES)
def test_answer_extraction_matches_theirs(prediction, response, parsed, parsed_gold, correct):
    assert pb.parse_answer(prediction) == parsed
    assert pb.parse_answer(response) == parsed_gold
    assert pb.is_correct(prediction, response) is bool(correct)


def test_accuracy_matches_theirs_and_raises_where_theirs_does():
    assert pb.accuracy([p for p, *_ in CASES], [r for _, r, *_ in CASES]) == ALL_CASES_ACCURACY
    with pytest.raises(ValueError):
        pb.accuracy(["x"], ["no answer"])
    with pytest.raises(ValueError, match="length mismatch"):
        pb.accuracy(["x"], [])


def test_gsm8k_task_hooks_read_prompt_and_generation_together():
    doc = {"question": "Tom has 3 apples and buys 13. How many?", "answer": "3 + 13 = <<3+13=16>>16\n#### 16"}
    assert pb.gsm8k_text(doc) == "Question: Tom has 3 apples and buys 13. How many? Think step by step.\nAnswer:"
    assert pb.gsm8k_target(doc) == "16"
    assert pb.gsm8k_results(doc, [" 3 + 13 = 16. The answer is: 16"]) == {"accuracy": 1.0}
    assert pb.gsm8k_results(doc, [" I do not know."]) == {"accuracy": 0.0}


def test_data_options_follow_their_data_py(tmp_path):
    from tasks import arithmetic

    assert arithmetic.valid_indices(7473)[:10] == VALID_FIRST
    rows = [{"query": f"q{i}", "response": f"r{i} The answer is: {i}", "type": "GSM_AnsAug",
             "original_question": f"q{i}"} for i in range(12)]
    rows[3]["response"] = "x" * 1300   # len("q3 " + response) = 1303 > 1300: dropped
    (tmp_path / "mm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gsm = [{"question": f"g{i}", "answer": f"step\n#### {i}"} for i in range(30)]
    (tmp_path / "gsm8k" / "main").mkdir(parents=True)
    (tmp_path / "gsm8k" / "main" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gsm))
    splits = arithmetic.load_paper(
        data_files=str(tmp_path / "mm.jsonl"), template=pb.TEMPLATE, max_chars=1300, train_rows=5,
        loss_on_prompt=True, test_size=3,
        validation={"data_dir": str(tmp_path / "gsm8k"), "subset": "main", "split": "train", "size": 4})
    # the first 5 rows that pass the filter, in order, the whole text as target
    assert [r["target"] for r in splits["train"]] == [
        f"Question: q{i} Think step by step.\nAnswer:r{i} The answer is: {i}" for i in (0, 1, 2, 4, 5)]
    assert all(r["prompt"] == "" for r in splits["train"] + splits["validation"])
    assert [r["answer"] for r in splits["validation"]] == [str(i) for i in arithmetic.valid_indices(30, 4, 0)]
    # the test hold-out comes from the rows after the trained ones, prompt and target apart
    assert {r["prompt"] for r in splits["test"]} <= {f"Question: q{i} Think step by step.\nAnswer:"
                                                     for i in range(6, 12)}
    assert len(splits["test"]) == 3
    # without the options: the MoRA/MiLoRA setting as before (Alpaca prompt, seeded hold-outs)
    plain = arithmetic.load_paper(data_files=str(tmp_path / "mm.jsonl"), validation_size=2, test_size=2)
    assert [len(plain[s]) for s in ("train", "validation", "test")] == [8, 2, 2]
    assert plain["train"][0]["prompt"].startswith("Below is an instruction")


# ---------------------------------------------------------------- forgetting


def _their_loss(model, tokenizer, rows: list[str], batch_size: int = 4, max_length: int = 768) -> float:
    """Their calculate_mean_per_token_loss, written out: BOS + text cut to max_length tokens,
    left-padded batches, the cross-entropy of every token after the first, pooled."""
    import torch

    losses = []
    tokenizer.padding_side = "left"
    for j in range(0, len(rows), batch_size):
        batch = tokenizer(rows[j:j + batch_size], truncation=True, max_length=max_length)
        batch = tokenizer.pad(batch, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        for logit, target, mask in zip(logits, batch["input_ids"], batch["attention_mask"]):
            n = int(mask.sum())
            losses += torch.nn.functional.cross_entropy(logit[-n:][:-1], target[-n:][1:], reduction="none").tolist()
    return sum(losses) / len(losses)


def test_wiki_loss_task_equals_their_computation(tmp_path):
    import torch

    from evaluation.run import evaluate_run
    from paper_fixtures import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_model("llama3_2", tmp_path / "llama3_2")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id   # as Llama-3.2's: BOS first
    wiki = ROOT / ".test" / "hub" / "finewiki" / "train.jsonl"
    rows = [json.loads(line)["text"] for line in wiki.read_text().splitlines()]
    assert max(len(tokenizer(r)["input_ids"]) for r in rows) > 768   # the cut is exercised
    torch.manual_seed(0)
    expected = _their_loss(model, tokenizer, rows)
    out = evaluate_run(model, tokenizer, None, None, tmp_path / "eval.json", lm_eval_tasks=["peft_wiki_loss"],
                       lm_eval_data={"peft_wiki_loss": {"train": str(wiki)}}, batch_size=2)
    got = out["results"]["peft_wiki_loss"]["wiki_loss,none"]
    assert got == pytest.approx(expected, abs=1e-5), (got, expected)
    # each row: exactly the tokens theirs scores
    with pb.evaluation_tokenizer(tokenizer):
        for row in rows:
            n = len(tokenizer(pb.wiki_target({"text": row}), add_special_tokens=False)["input_ids"])
            assert n == min(len(tokenizer(row)["input_ids"]), 768) - 1


def test_wiki_loss_needs_the_tokenizer():
    with pytest.raises(RuntimeError, match="tokenizer"):
        pb.wiki_text({"text": "x"})


# ---------------------------------------------------------------- the profile


def test_profile_variants_are_valid_configs_of_the_pinned_peft():
    import adapters
    from adapters import peft_method

    config = yaml.safe_load(PROFILE.read_text())
    assert PEFT_COMMIT in PROFILE.read_text()
    assert set(config["variants"]) == set(config["define_variants"])
    for name, variant in config["define_variants"].items():
        if variant["method"] == "full":
            continue
        block = adapters.method_config(variant["method"])["peft"]
        targets = (variant.get("train") or {}).get("target_modules", ["q_proj", "v_proj"])
        resolved = peft_method.resolve_config(variant["method"], block, variant.get("options") or {},
                                              target_modules=targets)
        if "target_modules" in (variant.get("train") or {}):
            assert sorted(resolved.target_modules) == sorted(targets), name
        for key, value in (variant.get("options") or {}).items():
            got = getattr(resolved, key)
            got = sorted(got) if isinstance(got, (set, list)) and not isinstance(value, str) else got
            assert got == value, (name, key, got, value)


def test_reference_rows_are_their_results():
    """A few cells checked by hand against results/<experiment>.json at PEFT_COMMIT: train_info
    metrics[-1]["test accuracy"], ["forgetting"], num_trainable_params."""
    import pandas as pd

    from analysis.reference import load_mapping, load_reference

    ref = load_reference()
    ref = ref[ref["paper"].eq("PEFT") & ref["table"].eq("MetaMathQA")]
    cell = {(m, None if pd.isna(r) else int(r), c): v
            for m, r, c, v in zip(ref["method"], ref["r"], ref["column"], ref["value"])}
    assert cell[("LoRA", 32, "GSM8K")] == 47.84          # 0.4783927217589083
    assert cell[("LoRA", 32, "forgetting")] == 0.0500    # 0.04995572566986084
    assert cell[("LoRA", 32, "params")] == 9.1750        # 9175040
    assert cell[("FFT", None, "GSM8K")] == 47.16         # 0.4715693707354056
    assert cell[("DoRA", 32, "GSM8K")] == 46.93          # 0.4692949203942381
    assert cell[("IA3", None, "forgetting")] == 0.0504   # 0.050379395484924316
    assert ref["verified"].all()
    entry = next(e for e in load_mapping() if e["paper"] == "PEFT")
    variants = yaml.safe_load(PROFILE.read_text())["define_variants"]
    roles = {v["method"] for v in variants.values()}
    assert {row["role"] for row in entry["rows"]} == roles   # every row has a variant, and back
    assert len(entry["rows"]) == len(variants) == len(set(zip(ref["method"], ref["r"].astype(str))))
