"""Pretraining from scratch (MoRA Table 3): LoRA / MoRA / ReLoRA / ReMoRA on a randomly initialised model.

  cpt_scratch   plain general text (prompt "", loss on the whole text); perplexity on held-out text
Paper source: `allenai/c4` (en), the train split streamed (its first `max_rows` documents) to train
on and the validation split for validation/test; MoRA reports C4 validation perplexity (lm-eval's
c4 task). Tiny source: tasks.corpus's general mixture, the kind of text the tiny base model reads,
drawn from a stream of its own so the documents are other draws than the base model's corpus (the
mixture's space is small: about 40% of them occur there too, which a random init never sees);
validation/test are held-out documents that no general corpus ever emits.
The task supplies only text: the run's config makes it pretraining (model_init: random, pack: true,
embeddings / norms / lm_head in modules_to_save).
"""
from __future__ import annotations

from tasks import corpus, hub
from tasks.sampling import with_ids
from tasks.spec import TaskSpec

TINY_STREAM = "scratch-corpus"   # general_corpus's default stream is the base model's corpus


def _texts(texts: list[str]) -> list[dict]:
    return [{"prompt": "", "target": text} for text in texts]


def _tiny(seed: int, sizes: dict) -> dict:
    train = corpus.general_corpus(seed, sizes["train"], stream=TINY_STREAM)
    held = corpus.heldout_general_docs(seed, sizes["validation"] + sizes["test"])
    n_val = sizes["validation"]
    return with_ids({"train": _texts(train), "validation": _texts(held[:n_val]), "test": _texts(held[n_val:])},
                    "cpt_scratch")


def load_scratch(*, max_rows: int = 1_000_000, validation_size: int = 500, test_size: int = 500,
                 **source) -> dict:
    """C4's first `max_rows` train documents; its first validation documents held out.

    MoRA's run reads 10k steps × 1024 × 512 = 5.2B tokens (~12M C4 documents); the trainer keeps
    the encoded train split in memory, so the default reads 1M (~0.45B tokens) and repeats them.
    `source` takes the usual loader options (hub_id, subset, data_files={train, validation},
    data_dir, revision, cache_dir, streaming, text_column); the default is allenai/c4 en, streamed.
    """
    if "split" in source:
        raise ValueError("cpt_scratch reads the source's train and validation splits; drop split=")
    if min(max_rows, validation_size, test_size) < 1:
        raise ValueError(f"cpt_scratch: max_rows, validation_size and test_size must be ≥ 1, got "
                         f"{max_rows}, {validation_size}, {test_size}")
    hub.require_per_split(source.get("data_files"), ("train", "validation"), "cpt_scratch")
    column = source.get("text_column", "text")
    c4 = {"hub_id": "allenai/c4", "subset": "en", "streaming": True}

    def texts(split: str, n: int) -> list[dict]:
        rows = hub.source_rows({**source, "split": split, "max_rows": n}, f"C4 {split} text", (column,), **c4)
        return _texts([row[column] for row in rows if row[column]])

    train, held = texts("train", max_rows), texts("validation", validation_size + test_size)
    if len(held) <= validation_size:
        raise ValueError(f"cpt_scratch: the validation split has {len(held)} texts, validation_size="
                         f"{validation_size} leaves no test rows; lower validation_size")
    return with_ids({"train": train, "validation": held[:validation_size], "test": held[validation_size:]},
                    "cpt_scratch")


SPECS = [
    TaskSpec(name="cpt_scratch", family="continual_pretraining", kind="causal_lm", num_labels=None,
             metrics=["perplexity"], lm_eval_tasks=["c4"], required_columns=("id", "prompt", "target"),
             default_sizes={"train": 4000, "validation": 200, "test": 200},
             generator=_tiny, paper_loader=load_scratch,
             description="general text, trained from a random init; perplexity on held-out general text",
             paper_source="allenai/c4 en: train streamed, validation held out (MoRA Table 3)"),
]
