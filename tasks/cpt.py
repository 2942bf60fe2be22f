"""Continual pretraining: one training text, three probes.

All three tasks share their train split (plain domain text: prompt "", loss on the whole text);
they differ in what their validation/test splits measure:
  cpt_domain     perplexity on held-out domain text (did the model learn the domain?)
  cpt_domain_qa  multiple-choice questions about domain facts stated in the train text
  cpt_general    perplexity on held-out general text (forgetting)
Paper source: a PubMed-abstract corpus (MoRA's BioMed setting; configurable Hub id / local files and
text column), PubMedQA (`qiaojin/PubMedQA`, pqa_labeled) for domain QA in lm-eval's pubmedqa prompt,
and `allenai/c4` validation text for forgetting. The paper profile also runs lm-eval's pubmedqa,
MMLU biomedical subsets, c4 and wikitext (MiLoRA measures forgetting on WikiText-103).
Tiny source: tasks.corpus's domain corpus about invented drugs, and its held-out text.
"""
from __future__ import annotations

import functools

from tasks import corpus, hub, prompts
from tasks.biomed import DOMAIN_SEED, build_domain
from tasks.commonsense import question_record
from tasks.sampling import carve, rng_for, with_ids
from tasks.spec import TaskSpec

MMLU_BIOMED = ["mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_biology", "mmlu_college_medicine",
               "mmlu_medical_genetics", "mmlu_professional_medicine"]


def _texts(texts: list[str]) -> list[dict]:
    return [{"prompt": "", "target": text} for text in texts]


# -- tiny ------------------------------------------------------------------------------------------
def _tiny_train(seed: int, n_docs: int, domain_seed: int) -> tuple[list[dict], list]:
    pairs = corpus.domain_docs_with_facts(seed, n_docs, domain_seed)
    stated = list(dict.fromkeys(fact for _, facts in pairs for fact in facts))
    return _texts([doc for doc, _ in pairs]), stated


def _tiny(task: str, seed: int, sizes: dict, domain_seed: int = DOMAIN_SEED) -> dict:
    train, stated = _tiny_train(seed, sizes["train"], domain_seed)
    n_val, n_eval = sizes["validation"], sizes["validation"] + sizes["test"]
    if task == "cpt_domain":
        held = _texts(corpus.heldout_domain_docs(seed, n_eval, domain_seed))
    elif task == "cpt_general":
        held = _texts(corpus.heldout_general_docs(seed, n_eval))
    else:
        if n_eval > len(stated):
            raise ValueError(f"cpt_domain_qa: the {sizes['train']} train documents state {len(stated)} facts, "
                             f"one question each; sizes ask for {n_eval} questions (add train documents)")
        rng = rng_for("cpt-qa", seed)
        rng.shuffle(stated)
        held = [question_record(build_domain(domain_seed), fact, rng) for fact in stated[:n_eval]]
    return with_ids({"train": train, "validation": held[:n_val], "test": held[n_val:]}, task)


# -- paper -----------------------------------------------------------------------------------------
def _domain_splits(domain: dict | None, seed: int) -> dict:
    domain = dict(domain or {})
    validation_size, test_size = domain.pop("validation_size", 500), domain.pop("test_size", 500)
    column = domain.get("text_column", "text")
    rows = hub.source_rows(domain, "domain corpus (PubMed abstracts)", (column,))
    return carve(_texts([row[column] for row in rows if row[column]]), seed, validation_size, test_size)


def load_domain(*, seed: int = 0, **domain) -> dict:
    """cpt_domain: the domain corpus, with held-out documents for perplexity."""
    return with_ids(_domain_splits(domain, seed), "cpt_domain")


def load_general(*, domain: dict | None = None, general: dict | None = None, validation_size: int = 500,
                 seed: int = 0) -> dict:
    """cpt_general: train on the domain corpus; held-out general text (C4 validation) for forgetting."""
    general = dict(general or {})
    column = general.get("text_column", "text")
    rows = hub.source_rows(general, "general text (C4)", (column,), hub_id="allenai/c4", subset="en",
                           split="validation", streaming=True, max_rows=2000)
    held = _texts([row[column] for row in rows if row[column]])
    if not 0 < validation_size < len(held):
        raise ValueError(f"cpt_general: validation_size={validation_size} must leave test rows of {len(held)}")
    train = _domain_splits(domain, seed)["train"]
    return with_ids({"train": train, "validation": held[:validation_size], "test": held[validation_size:]},
                    "cpt_general")


PUBMEDQA_CHOICES = ["yes", "no", "maybe"]


def load_domain_qa(*, domain: dict | None = None, qa: dict | None = None, validation_size: int = 500,
                   seed: int = 0) -> dict:
    """cpt_domain_qa: train on the domain corpus; PubMedQA (labelled) as 3-way multiple choice."""
    rows = hub.source_rows(qa, "domain QA (PubMedQA)", ("question", "context", "final_decision"),
                           hub_id="qiaojin/PubMedQA", subset="pqa_labeled")
    choices = [f" {c}" for c in PUBMEDQA_CHOICES]
    questions = []
    for row in rows:
        label = PUBMEDQA_CHOICES.index(row["final_decision"])
        abstract = "\n".join(row["context"]["contexts"])
        questions.append({"prompt": prompts.PUBMEDQA.format(abstract=abstract, question=row["question"]),
                          "target": choices[label], "choices": choices, "label": label})
    if not 0 < validation_size < len(questions):
        raise ValueError(f"cpt_domain_qa: validation_size={validation_size} must leave test rows of {len(questions)}")
    train = _domain_splits(domain, seed)["train"]
    return with_ids({"train": train, "validation": questions[:validation_size],
                     "test": questions[validation_size:]}, "cpt_domain_qa")


_COMMON = dict(family="continual_pretraining", kind="causal_lm", num_labels=None)
SPECS = [
    TaskSpec(name="cpt_domain", metrics=["perplexity"], lm_eval_tasks=["pubmedqa"] + MMLU_BIOMED,
             required_columns=("id", "prompt", "target"),
             default_sizes={"train": 2000, "validation": 200, "test": 200},
             generator=functools.partial(_tiny, "cpt_domain"), paper_loader=load_domain,
             description="domain text about invented drugs; perplexity on held-out domain text",
             paper_source="PubMed abstracts (MoRA BioMed; Hub id / files configurable)", **_COMMON),
    TaskSpec(name="cpt_domain_qa", metrics=["acc"], lm_eval_tasks=["pubmedqa"],
             required_columns=("id", "prompt", "target"),  # + choices/label on validation and test
             default_sizes={"train": 2000, "validation": 50, "test": 150},
             generator=functools.partial(_tiny, "cpt_domain_qa"), paper_loader=load_domain_qa,
             description="same training text; multiple choice on domain facts it states",
             paper_source="PubMed abstracts + qiaojin/PubMedQA pqa_labeled", shares_train_with="cpt_domain",
             **_COMMON),
    TaskSpec(name="cpt_general", metrics=["perplexity"], lm_eval_tasks=["c4", "wikitext"],
             required_columns=("id", "prompt", "target"),
             default_sizes={"train": 2000, "validation": 200, "test": 200},
             generator=functools.partial(_tiny, "cpt_general"), paper_loader=load_general,
             description="same training text; perplexity on held-out general text (forgetting)",
             paper_source="PubMed abstracts + allenai/c4 validation", shares_train_with="cpt_domain", **_COMMON),
]
