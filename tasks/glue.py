"""GLUE: SST-2, MRPC, CoLA, QNLI, RTE, STS-B.

Paper source: `nyu-mll/glue`. The papers (VeRA, SoRA) report the dev set, so `test` is GLUE's
validation split. What the suite selects on (a learning rate among a paper row's, the lr sweep)
must never be the split it reports, so by default `validation` is a seeded hold-out of train
(`validation_size` rows, default a tenth of train up to 1000) and the runs train on the rest.
`validation_from: dev` reproduces what the papers did instead — select on the dev set they report —
and the paper tables then say that their selection saw the reported rows.
Tiny source: the same skills on the world's vocabulary, with GLUE's label conventions
(sst2 1=positive, mrpc 1=equivalent, cola 1=acceptable, qnli/rte 0=entailment, stsb 0-5).
"""
from __future__ import annotations

import functools
import random

from tasks import hub
from tasks.sampling import draw_splits, rng_for, with_ids
from tasks.spec import TaskSpec
from tasks.world import ANIMALS, Fact, build_world, capitalized

# -- sentiment (SST-2; also the corpus's reviews) ---------------------------------------------------
REVIEW_SUBJECTS = ["the movie", "the film", "the soup", "the service", "the hotel", "the room", "the book",
                   "the song", "the pizza", "the staff", "the show", "the game", "the coffee", "the bread",
                   "the music", "the view", "the cake", "the trip"]
POSITIVE = ["good", "great", "lovely", "excellent", "nice", "wonderful", "pleasant", "tasty", "fun", "charming"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "poor", "dull", "horrible", "bland", "rude", "disappointing"]
INTENSIFIERS = ["", "", "really ", "very ", "quite ", "truly "]


def sentiment_sentence(rng: random.Random) -> tuple[str, int]:
    """A review sentence and its polarity (1 positive); negation and "but" flip what counts."""
    subject, other = rng.sample(REVIEW_SUBJECTS, 2)
    positive = rng.random() < 0.5
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    form = rng.randrange(6)
    if form == 0:
        text, label = f"{subject} was {rng.choice(INTENSIFIERS)}{adjective}.", positive
    elif form == 1:
        text, label = f"{subject} was not {adjective}.", not positive
    elif form == 2:
        text, label = f"i did not think {subject} was {adjective}.", not positive
    elif form == 3:  # the clause after "but" decides
        first = rng.choice(NEGATIVE if positive else POSITIVE)
        text, label = f"{subject} was {first}, but {other} was {adjective}.", positive
    elif form == 4:
        verb = rng.choice(["loved", "liked", "enjoyed"] if positive else ["hated", "disliked"])
        text, label = f"i {verb} {subject}.", positive
    else:
        text, label = f"nothing about {subject} was {adjective}.", not positive
    return capitalized(text), int(label)


# -- grammaticality (CoLA) --------------------------------------------------------------------------
VERBS = [("eats", "eat"), ("likes", "like"), ("sees", "see"), ("finds", "find"), ("wants", "want"),
         ("paints", "paint"), ("buys", "buy"), ("sells", "sell")]
THINGS = ["ball", "hat", "cup", "box", "book", "chair", "kite", "lamp"]
ADVERBIALS = ["", " every day", " in the morning", " at home", " near the river", " after lunch"]


def grammar_sentence(rng: random.Random) -> tuple[str, int]:
    """A simple sentence, or a corrupted one (agreement, word order, doubled verb, stray article)."""
    words = build_world().words()
    singular = rng.random() < 0.5
    if singular:
        subject = rng.choice([rng.choice(words["first_names"]), f"the {rng.choice(words['animals'])}"])
    else:
        animal = rng.choice(words["animals"])
        subject = rng.choice([f"the {ANIMALS[animal][0]}", " and ".join(rng.sample(words["first_names"], 2))])
    verb_s, verb_p = rng.choice(VERBS)
    verb, wrong_verb = (verb_s, verb_p) if singular else (verb_p, verb_s)
    obj = rng.choice([f"the {rng.choice(words['foods'])}", f"a {rng.choice(words['colors'])} {rng.choice(THINGS)}"])
    tail = rng.choice(ADVERBIALS)
    if rng.random() < 0.6:
        return capitalized(f"{subject} {verb} {obj}{tail}."), 1
    corruption = rng.randrange(4)
    if corruption == 0:
        text = f"{subject} {wrong_verb} {obj}{tail}."
    elif corruption == 1:
        text = f"{subject} {obj} {verb}{tail}."
    elif corruption == 2:
        text = f"{subject} {verb} {verb} {obj}{tail}."
    else:
        head, noun = obj.rsplit(" ", 1)
        text = f"{subject} {verb} {noun} {head}{tail}."
    return capitalized(text), 0


# -- sentence pairs from world facts (MRPC, QNLI, RTE, STS-B) ---------------------------------------
def _say(fact: Fact, rng: random.Random, avoid: str | None = None) -> str:
    options = [s for s in build_world().statements(fact) if s != avoid]
    return rng.choice(options)


def _other_object(fact: Fact, rng: random.Random) -> Fact:
    return Fact(fact.subject, fact.relation, build_world().distractors(fact, rng, 1)[0])


def _same_relation_other_subject(fact: Fact, rng: random.Random) -> Fact:
    return rng.choice([f for f in build_world().facts_with[fact.relation] if f.subject != fact.subject])


def paraphrase_pair(rng: random.Random) -> dict:
    fact = rng.choice(build_world().facts)
    first = _say(fact, rng)
    if rng.random() < 0.5:
        return {"text": first, "text_pair": _say(fact, rng, avoid=first), "label": 1}
    other = _other_object(fact, rng) if rng.random() < 0.5 else _same_relation_other_subject(fact, rng)
    return {"text": first, "text_pair": _say(other, rng), "label": 0}


def question_answer_pair(rng: random.Random) -> dict:
    world = build_world()
    fact = rng.choice(world.facts)
    if rng.random() < 0.5:
        return {"text": world.question(fact), "text_pair": _say(fact, rng), "label": 0}
    others = [f for f in world.facts_about[fact.subject] if f.relation != fact.relation]
    other = rng.choice(others) if others and rng.random() < 0.5 else _same_relation_other_subject(fact, rng)
    return {"text": world.question(fact), "text_pair": _say(other, rng), "label": 1}


def entailment_pair(rng: random.Random) -> dict:
    """Premise: two facts about a person (or where they live and that city's country)."""
    world = build_world()
    person = rng.choice(world.people)
    entailed = rng.random() < 0.5
    if rng.random() < 0.3:  # one inference step: city -> country
        city = next(f.object for f in world.facts_about[person] if f.relation == "lives_in")
        country = next(f.object for f in world.facts_about[city] if f.relation == "in_country")
        premise = f"{person} lives in {city}. {city} is a city in {country}."
        claimed = country if entailed else rng.choice([c for c in world.countries if c != country])
        return {"text": premise, "text_pair": f"{person} lives in {claimed}.", "label": 0 if entailed else 1}
    first, second = rng.sample(world.facts_about[person], 2)
    premise = f"{_say(first, rng)} {_say(second, rng)}"
    claim = rng.choice([first, second])
    claim = claim if entailed else _other_object(claim, rng)
    return {"text": premise, "text_pair": _say(claim, rng), "label": 0 if entailed else 1}


STS_SCORES = {"paraphrase": 5.0, "other_object": 3.2, "other_subject": 2.4, "other_relation": 1.6,
              "other_subject_and_object": 1.0, "unrelated": 0.0}


def similarity_pair(rng: random.Random) -> dict:
    """Two fact sentences; the score says how much of (subject, relation, object) they share."""
    world = build_world()
    fact = rng.choice(world.facts)
    case = rng.choice(list(STS_SCORES))
    first = _say(fact, rng)
    if case == "paraphrase":
        return {"text": first, "text_pair": _say(fact, rng, avoid=first), "label": STS_SCORES[case]}
    if case == "other_object":
        other = _other_object(fact, rng)
    elif case == "other_subject":
        other = Fact(_same_relation_other_subject(fact, rng).subject, fact.relation, fact.object)
    elif case == "other_relation":
        others = [f for f in world.facts_about[fact.subject] if f.relation != fact.relation]
        if not others:  # single-fact subjects (professions): fall back to an unrelated pair
            return similarity_pair(rng)
        other = rng.choice(others)
    elif case == "other_subject_and_object":
        other = _same_relation_other_subject(fact, rng)
        if other.object == fact.object:
            other = _other_object(other, rng)
    else:
        other = rng.choice([f for f in world.facts if f.subject != fact.subject and f.relation != fact.relation])
    return {"text": first, "text_pair": _say(other, rng), "label": STS_SCORES[case]}


def _single(sentence_fn):
    def make(rng: random.Random) -> dict:
        text, label = sentence_fn(rng)
        return {"text": text, "label": label}
    return make


MAKERS = {"sst2": _single(sentiment_sentence), "cola": _single(grammar_sentence), "mrpc": paraphrase_pair,
          "qnli": question_answer_pair, "rte": entailment_pair, "stsb": similarity_pair}


def generate_tiny(task: str, seed: int, sizes: dict) -> dict:
    key_of = (lambda r: r["text"]) if task in ("sst2", "cola") else (lambda r: (r["text"], r["text_pair"]))
    # The review sentences share the corpus's "sentiment" partition, so no test sentence is pretrained on.
    namespace = "sentiment" if task == "sst2" else f"glue-{task}"
    splits = draw_splits(MAKERS[task], key_of, sizes, rng_for("glue", task, seed), namespace)
    return with_ids(splits, task)


# -- paper source -----------------------------------------------------------------------------------
GLUE_COLUMNS = {"sst2": ("sentence", None), "mrpc": ("sentence1", "sentence2"), "cola": ("sentence", None),
                "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"),
                "stsb": ("sentence1", "sentence2")}


VALIDATION_FROM = ("train", "dev")


def default_holdout(n_train: int) -> int:
    """Rows of train held out for selection when `validation_size` is not set: a tenth, 1 to 1000."""
    return max(1, min(1000, n_train // 10))


def load_paper(task: str, *, hub_id: str = "nyu-mll/glue", data_dir: str | None = None, data_files=None,
               revision: str | None = None, cache_dir: str | None = None, validation_size: int | None = None,
               validation_from: str = "train", seed: int = 0) -> dict:
    if validation_from not in VALIDATION_FROM:
        raise ValueError(f"{task}: validation_from={validation_from!r}; use one of {list(VALIDATION_FROM)} "
                         f"(train: a held-out part of train, never the reported dev set; dev: the papers' practice)")
    if validation_from == "dev" and validation_size:
        raise ValueError(f"{task}: validation_size={validation_size} carves rows out of train, but "
                         f"validation_from: dev selects on the dev set; drop one of the two")
    hub.require_per_split(data_files, ("train", "validation"), task)
    text_column, pair_column = GLUE_COLUMNS[task]
    columns = tuple(c for c in (text_column, pair_column, "label", "idx") if c)

    def records(split: str) -> list[dict]:
        rows = hub.load_split(hub_id, task, split, data_files=data_files, data_dir=data_dir, revision=revision,
                              cache_dir=cache_dir, columns=columns)
        out = []
        for row in rows:
            record = {"id": f"{task}-{split}-{row['idx']}", "text": row[text_column]}
            if pair_column:
                record["text_pair"] = row[pair_column]
            record["label"] = float(row["label"]) if task == "stsb" else int(row["label"])
            out.append(record)
        return out

    train, dev = records("train"), records("validation")
    if validation_from == "dev":
        return {"train": train, "validation": dev, "test": dev}
    validation_size = validation_size or default_holdout(len(train))
    if not 0 < validation_size < len(train):
        raise ValueError(f"{task}: validation_size={validation_size} must be between 1 and {len(train) - 1}")
    order = list(range(len(train)))
    rng_for("glue-holdout", task, seed).shuffle(order)
    held = set(order[:validation_size])
    validation = [r for i, r in enumerate(train) if i in held]
    train = [r for i, r in enumerate(train) if i not in held]
    return {"train": train, "validation": validation, "test": dev}


DESCRIPTIONS = {
    "sst2": "sentiment of short reviews, with negation and 'but' clauses",
    "mrpc": "do two fact sentences say the same thing (paraphrase) or not",
    "cola": "is a simple sentence grammatical (agreement, word order, doubled words)",
    "qnli": "does a sentence answer a question about a world fact",
    "rte": "does a two-fact premise entail a hypothesis (incl. city -> country)",
    "stsb": "similarity 0-5 of two fact sentences by shared subject/relation/object",
}
METRICS = {"sst2": ["acc"], "mrpc": ["acc", "f1"], "cola": ["mcc"], "qnli": ["acc"], "rte": ["acc"],
           "stsb": ["pearson", "spearman"]}

SPECS = [
    TaskSpec(
        name=task, family="glue",
        kind="regression" if task == "stsb" else "classification",
        num_labels=1 if task == "stsb" else 2,
        metrics=METRICS[task],
        lm_eval_tasks=[] if task == "stsb" else [task],  # lm-eval has no STS-B: a suite task
        required_columns=("id", "text", "label") + (("text_pair",) if GLUE_COLUMNS[task][1] else ()),
        default_sizes={"train": 1000, "validation": 200, "test": 300},
        generator=functools.partial(generate_tiny, task),
        paper_loader=functools.partial(load_paper, task),
        description=DESCRIPTIONS[task],
        paper_source=f"nyu-mll/glue {task} (train less a held-out tenth for selection; dev as test)",
    )
    for task in GLUE_COLUMNS
]
