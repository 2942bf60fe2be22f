"""The tiny profile's base model: a byte-level BPE tokenizer and a small LLaMA, pretrained here.

    python -m training.base_model --config config/base_model/tiny.yaml --out DIR

makes DIR a model directory (config.json, model.safetensors and the tokenizer, via save_pretrained:
plain `AutoModelForCausalLM.from_pretrained(DIR)` loads it), beside DIR/tokenizer/,
DIR/corpus/{train,validation}.jsonl (what the model read) and the usual run files
(train_log.jsonl, train_summary.json with the validation perplexity, provenance.json).
Pretraining is an ordinary run of the trainer — full training (method null) from a random
init, packed rows — so it checkpoints, resumes and logs like every other run.

Config sections: `seed`; `corpus` (n_docs, validation_docs); `tokenizer` (vocab_size,
min_frequency); `model` (LlamaConfig keyword arguments); `train` (run config keys, see
`python -m training --help`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .config import TrainConfig
from .files import atomic_write_text

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SECTIONS = {"seed": None, "corpus": {"n_docs", "validation_docs"}, "tokenizer": {"vocab_size", "min_frequency"},
            "model": None, "train": None}


def train_tokenizer(texts: list[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style: any byte string encodes) with <pad>, <s>, </s>.

    Like LLaMA's tokenizer, encoding with special tokens prepends <s>; a text pair becomes
    `<s> A </s> B` (for classifiers, which pool the last token).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {EOS} $B",
                                                       special_tokens=[(BOS, bos), (EOS, eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS)


def _check_config(config: dict) -> None:
    for section, value in config.items():
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r} in the base-model config; known: {', '.join(SECTIONS)}")
        allowed = SECTIONS[section]
        if allowed is not None:
            unknown = set(value or {}) - allowed
            if unknown:
                raise ValueError(f"unknown key(s) {sorted(unknown)} in section {section!r}; known: {sorted(allowed)}")


def general_documents(seed: int, n_docs: int) -> list[str]:
    from tasks.corpus import general_corpus  # the suite's generated pretraining text
    return general_corpus(seed, n_docs)


def build(config: dict, out_dir: str | Path, documents: list[str] | None = None, **train_kwargs) -> dict:
    """Tokenizer + pretraining into `out_dir`; returns the trainer's summary.

    `documents` replaces the suite's general corpus (tests); `train_kwargs` go to training.train.
    """
    from .trainer import train

    _check_config(config)
    out = Path(out_dir)
    seed = config.get("seed", 0)
    corpus = config.get("corpus") or {}
    n_validation = corpus.get("validation_docs", 200)
    if documents is None:
        documents = general_documents(seed, corpus.get("n_docs", 5000))
    if len(documents) <= n_validation:
        raise ValueError(f"{len(documents)} documents leave none for training after {n_validation} validation docs")
    splits = {"train": documents[:-n_validation], "validation": documents[-n_validation:]}
    for split, docs in splits.items():
        atomic_write_text(out / "corpus" / f"{split}.jsonl", "".join(
            json.dumps({"id": f"{split}-{i}", "prompt": "", "target": d}) + "\n" for i, d in enumerate(docs)))

    tok_cfg = config.get("tokenizer") or {}
    tokenizer = train_tokenizer(splits["train"], tok_cfg.get("vocab_size", 2048), tok_cfg.get("min_frequency", 2))
    tokenizer.save_pretrained(out / "tokenizer")

    run = {"method": None, "model_init": "random", "tokenizer": str(out / "tokenizer"),
           "model_config": {"model_type": "llama", **(config.get("model") or {})},
           "data_dir": str(out / "corpus"), "task_kind": "causal_lm", "pack": True, "seed": seed,
           **(config.get("train") or {})}
    return train(TrainConfig.from_dict(run), out, **train_kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.base_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="base-model YAML (e.g. config/base_model/tiny.yaml)")
    parser.add_argument("--out", required=True, help="output directory; it becomes the model directory")
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():  # a batch job's log: no transformers progress bars
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    try:
        config = yaml.safe_load(Path(args.config).read_text()) or {}
        summary = build(config, args.out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary["status"] != "ok":
        print(f"{summary['status']}: {summary.get('reason', '')}", file=sys.stderr)
        return 1
    print(f"base model: {args.out}  validation perplexity {summary.get('eval_perplexity', float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
