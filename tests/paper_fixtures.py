"""What a paper profile needs to run offline on a CPU, in miniature.

- `save_model(arch, out)`: a tiny random model of a paper's architecture (LLaMA-2, LLaMA-3 with
  grouped-query attention, RoBERTa, DeBERTa-v2, GPT-2) with a byte-level BPE tokenizer trained on
  the fixtures' text, saved like a Hub checkpoint (config.json, safetensors, tokenizer files).
  LLaMA is 768 wide so that every rank of the profiles fits (MoRA r=256 type 1 on a 768 -> 1536
  projection needs r̂ = √(2304·256) = 768 ≤ its width). Encoders are saved without a task head, as
  their Hub checkpoints are (masked LM), so each GLUE task puts its own head on them.
- `write_data(root)`: a few rows of every Hub dataset the paper loaders read, in the Hub schema
  (column names and types as the dataset cards give them): Tülu v2, UltraFeedback (parquet),
  MetaMathQA, commonsense_170k, GLUE, GEM/e2e_nlg, PubMed abstracts, PubMedQA pqa_labeled, C4.
- `PAPER_DATA`: the `data.paper` options that point each task's loader at those files.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

SENTENCES = [
    "the patient received a daily dose of the drug for three weeks",
    "a small restaurant near the river serves cheap italian food",
    "the film was long but the actors were wonderful",
    "what is the capital of the country with the largest population",
    "she bought five apples and gave two of them to her brother",
    "the committee approved the new budget after a long debate",
    "children learn languages faster than most adults do",
    "the enzyme binds to the receptor and blocks the signal",
    "a quiet coffee shop in the city centre has high customer ratings",
    "the answer is not obvious unless you read the question twice",
    "researchers measured blood pressure in two hundred adults",
    "the train left the station twenty minutes late",
]
WORDS = sorted({w for s in SENTENCES for w in s.split()})


def _sentence(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# --- models -----------------------------------------------------------------------------------
ARCHS = {
    # arch: (model_type, config kwargs, causal LM?)
    "llama": ("llama", dict(hidden_size=768, intermediate_size=1536, num_hidden_layers=1, num_attention_heads=12,
                            num_key_value_heads=12, max_position_embeddings=512), True),
    "llama3": ("llama", dict(hidden_size=768, intermediate_size=1536, num_hidden_layers=1, num_attention_heads=12,
                             num_key_value_heads=4, max_position_embeddings=512), True),
    # The same architecture narrow, for a case that trains hundreds of steps at a small rank.
    "llama_narrow": ("llama", dict(hidden_size=128, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=4, max_position_embeddings=512), True),
    # Llama-3.2 (PEFT's MetaMathQA benchmark, Llama-3.2-3B): grouped-query attention, tied embeddings,
    # llama3 RoPE scaling, a tokenizer that starts text with BOS; long enough for PEFT's 768-token
    # general-text rows.
    "llama3_2": ("llama", dict(hidden_size=128, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                               num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
                               rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 256}),
                 True),
    "roberta": ("roberta", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                max_position_embeddings=520), False),
    "deberta": ("deberta-v2", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                   num_attention_heads=4, max_position_embeddings=512, relative_attention=True,
                                   pos_att_type=["p2c", "c2p"], position_buckets=32), False),
    "gpt2": ("gpt2", dict(n_embd=64, n_layer=1, n_head=4, n_positions=512), True),
}
# The Hub ids the profiles name -> the tiny stand-in of the same architecture.
HUB_ARCH = {
    "meta-llama/Llama-2-7b-hf": "llama",
    "meta-llama/Meta-Llama-3-8B": "llama3",
    "meta-llama/Llama-3.2-3B": "llama3_2",
    "FacebookAI/roberta-base": "roberta",
    "FacebookAI/roberta-large": "roberta",
    "microsoft/deberta-v3-base": "deberta",
    "openai-community/gpt2-medium": "gpt2",
    "openai-community/gpt2-large": "gpt2",
}


ADDS_BOS = {"llama3_2"}   # stand-ins whose tokenizer starts plain text with BOS, as the real one does


def _tokenizer(out: Path, add_bos: bool = False):
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = SENTENCES + ["<|user|>", "<|assistant|>", "### Instruction:", "### Response:", "The answer is: 42",
                          "name[The Eagle], eatType[coffee shop], food[French]", "0123456789abcdef-:"]
    bpe.train_from_iterator(corpus * 4, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "</s>", "<pad>", "<unk>", "<mask>"])
    if add_bos:
        bpe.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                special_tokens=[("<s>", bpe.token_to_id("<s>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", mask_token="<mask>", model_max_length=512)
    tok.save_pretrained(out)
    return tok


def save_model(arch: str, out: str | Path) -> Path:
    """A tiny random `arch` model with its tokenizer in `out` (a local stand-in for a Hub checkpoint)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    out = Path(out)
    if (out / "config.json").exists():
        return out
    model_type, dims, causal = ARCHS[arch]
    tok = _tokenizer(out, add_bos=arch in ADDS_BOS)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), **ids, **dims)
    torch.manual_seed(0)
    model = (AutoModelForCausalLM if causal else AutoModelForMaskedLM).from_config(config)
    model.save_pretrained(out)
    return out


# --- data in the Hub schemas --------------------------------------------------------------------
def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _glue(rng: random.Random, task: str, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = _sentence(rng), _sentence(rng)
        label = rng.random() * 5 if task == "stsb" else i % 2
        row = {"sst2": {"sentence": a}, "cola": {"sentence": a}, "mrpc": {"sentence1": a, "sentence2": b},
               "rte": {"sentence1": a, "sentence2": b}, "stsb": {"sentence1": a, "sentence2": b},
               "qnli": {"question": a + " ?", "sentence": b}}[task]
        rows.append({**row, "label": round(label, 3) if task == "stsb" else label, "idx": i})
    return rows


def write_data(root: str | Path) -> Path:
    """The fixtures under `root` (idempotent); returns root."""
    root = Path(root)
    rng = random.Random(0)
    n = 12
    # Tülu v2 mixture: dataset, id, messages [{role, content}]; one conversation with a long history.
    tulu = []
    for i in range(n):
        turns = 6 if i == 0 else 1 + i % 2
        messages = []
        for _ in range(turns):
            messages += [{"role": "user", "content": _sentence(rng, 40 if i == 0 else 8)},
                         {"role": "assistant", "content": _sentence(rng, 6)}]
        tulu.append({"dataset": "flan_v2", "id": f"flan_v2_{i}", "messages": messages})
    _jsonl(root / "tulu_v2" / "train.jsonl", tulu)
    # HuggingFaceH4/ultrafeedback_binarized, split train_sft (parquet on the Hub).
    import pandas as pd

    uf = [{"prompt": m["messages"][0]["content"], "prompt_id": f"{i:064x}",
           "chosen": m["messages"][:2], "rejected": [m["messages"][0], {"role": "assistant", "content": "no"}],
           "messages": m["messages"][:2], "score_chosen": 8.0, "score_rejected": 3.0} for i, m in enumerate(tulu)]
    (root / "ultrafeedback_binarized" / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(uf).to_parquet(root / "ultrafeedback_binarized" / "data" / "train_sft-00000-of-00001.parquet")
    # meta-math/MetaMathQA: query, response (ends "The answer is: X"), type, original_question.
    math = []
    for i in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        q = f"Tom has {a} apples and buys {b} more. How many apples does he have?"
        math.append({"query": q, "response": f"He has {a} + {b} = {a + b} apples.\nThe answer is: {a + b}",
                     "type": "GSM_Rephrased" if i % 2 else "MATH_AnsAug", "original_question": q})
    _jsonl(root / "MetaMathQA" / "train.jsonl", math)
    # openai/gsm8k main, train (PEFT's benchmark validates on 50 of its rows): question, answer ("#### n").
    gsm, gsm_rng = [], random.Random(1)   # its own generator: the other fixtures stay as they were
    for i in range(n):
        a, b = gsm_rng.randint(2, 40), gsm_rng.randint(2, 40)
        gsm.append({"question": f"Ann has {a} pens and finds {b} more. How many pens does she have?",
                    "answer": f"Ann has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} pens.\n#### {a + b}"})
    _jsonl(root / "gsm8k" / "main" / "train.jsonl", gsm)
    # LLM-Adapters ft-training_set/commonsense_170k.json: instruction, input, output, answer (a JSON list).
    cs = []
    for i in range(n):
        answer = f"answer{1 + i % 4}"
        cs.append({"instruction": f"Please choose the correct answer to the question: {_sentence(rng)}\n\n"
                                  "Answer1: yes Answer2: no Answer3: maybe Answer4: never\n\n"
                                  "Answer format: answer1/answer2/answer3/answer4",
                   "input": "", "output": f"the correct answer is {answer}", "answer": answer})
    (root / "commonsense_170k.json").write_text(json.dumps(cs))
    # nyu-mll/glue <task>: train and validation (the papers' dev set is the suite's test).
    for task in ("sst2", "cola", "mrpc", "qnli", "rte", "stsb"):
        for split in ("train", "validation"):
            _jsonl(root / "glue" / task / f"{split}.jsonl", _glue(rng, task, n))
    # GEM/e2e_nlg: gem_id, gem_parent_id, meaning_representation, target, references (one row per reference).
    for offset, split in enumerate(("train", "validation", "test")):
        rows = []
        for i in range(6 * offset, 6 * offset + 6):   # each split its own restaurants, as in E2E
            mr = f"name[The Eagle {i}], eatType[coffee shop], food[French], area[city centre]"
            refs = [f"The Eagle {i} is a French coffee shop in the city centre.",
                    f"In the city centre, The Eagle {i} serves French food."]
            for j, ref in enumerate(refs):
                rows.append({"gem_id": f"e2e_nlg-{split}-{i}-{j}", "gem_parent_id": f"e2e_nlg-{split}-{i}",
                             "meaning_representation": mr, "target": ref,
                             "references": [] if split == "train" else refs})
        _jsonl(root / "e2e_nlg" / f"{split}.jsonl", rows)
    # PubMed abstracts (a local corpus): text.
    _jsonl(root / "pubmed_abstracts.jsonl", [{"text": " ".join(_sentence(rng, 12) + "." for _ in range(3))}
                                             for _ in range(16)])
    # qiaojin/PubMedQA pqa_labeled: pubid, question, context{contexts, labels, meshes}, long_answer, final_decision.
    _jsonl(root / "PubMedQA" / "pqa_labeled" / "train.jsonl", [
        {"pubid": 1000 + i, "question": _sentence(rng) + "?",
         "context": {"contexts": [_sentence(rng, 12)], "labels": ["BACKGROUND"], "meshes": ["Humans"]},
         "long_answer": _sentence(rng, 10), "final_decision": ["yes", "no", "maybe"][i % 3]} for i in range(8)])
    # allenai/c4 en: text, timestamp, url.
    _jsonl(root / "c4" / "en" / "validation.jsonl", [
        {"text": " ".join(_sentence(rng, 12) + "." for _ in range(3)), "timestamp": "2019-04-25T12:57:54Z",
         "url": f"https://example.org/{i}"} for i in range(16)])
    return root


def paper_data(root: str) -> dict:
    """`data.paper` options pointing every task's loader at the fixtures under `root` (small hold-outs)."""
    domain = {"data_files": f"{root}/pubmed_abstracts.jsonl", "text_column": "text",
              "validation_size": 3, "test_size": 3}
    glue = {task: {"data_dir": f"{root}/glue", "validation_size": 3}
            for task in ("sst2", "cola", "mrpc", "qnli", "rte", "stsb")}
    return {
        **glue,
        "instruct": {"data_files": f"{root}/tulu_v2/train.jsonl", "validation_size": 2, "test_size": 2},
        "math": {"data_files": f"{root}/MetaMathQA/train.jsonl", "validation_size": 2, "test_size": 3},
        "commonsense": {"data_files": f"{root}/commonsense_170k.json", "validation_size": 2, "test_size": 3},
        "e2e": {"data_dir": f"{root}/e2e_nlg"},
        "uuid": {"n_pairs": 8, "validation_size": 2},
        "cpt_domain": domain,
        "cpt_domain_qa": {"domain": domain, "qa": {"data_dir": f"{root}/PubMedQA", "subset": "pqa_labeled"},
                          "validation_size": 3},
        "cpt_general": {"domain": domain, "general": {"data_dir": f"{root}/c4", "subset": "en",
                                                      "split": "validation", "streaming": False,
                                                      "max_rows": 16}, "validation_size": 4},
    }
