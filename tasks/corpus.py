"""Pretraining text for the tiny profile's base model, and the domain text for continual pretraining.

general_corpus: short documents (~70 characters) mixing the skills the tiny tasks fine-tune —
world facts in varied templates (40% of documents, in rounds over every subject, so every fact is
stated once the corpus has `min_docs_for_all_facts()` documents), person records, arithmetic,
worked word problems, lists, uuid key:value records, restaurant descriptions, reviews and simple
instructions with responses. Items in a task's evaluation partition (tasks.sampling) are never
emitted, so no tiny test item is pretrained on verbatim.
domain_corpus: abstract-like documents about tasks.biomed's invented drugs.
heldout_general_docs / heldout_domain_docs: documents from the same mixtures that the corpora
never emit (a content-hash partition), for perplexity and forgetting.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable

from tasks import arithmetic, e2e, glue, instruct
from tasks.biomed import DOMAIN_SEED, FILLERS, build_domain
from tasks.sampling import in_eval_partition, rng_for
from tasks.world import WORLD_SEED, build_world

FACT_SLOTS = (0, 2)          # positions (mod 5) of the fact documents: 40% of the general corpus
FACTS_PER_DOC = 2
HELDOUT_ONE_IN = 20          # 1 in 20 possible documents is reserved for held-out text


class FactRounds:
    """Visit every subject once per round (in a fresh order each round), stating its next facts."""

    def __init__(self, world, rng: random.Random, per_doc: int = FACTS_PER_DOC):
        self.world, self.rng, self.per_doc = world, rng, per_doc
        self.cursor = {subject: 0 for subject in world.subjects}
        self.queue: list[str] = []

    def next(self) -> list:
        if not self.queue:
            self.queue = list(self.world.subjects)
            self.rng.shuffle(self.queue)
        subject = self.queue.pop()
        facts = self.world.facts_about[subject]
        start = self.cursor[subject]
        self.cursor[subject] = (start + self.per_doc) % len(facts)
        return [facts[(start + i) % len(facts)] for i in range(min(self.per_doc, len(facts)))]


def rounds_to_state_all(world, per_doc: int = FACTS_PER_DOC) -> int:
    return max(-(-len(facts) // per_doc) for facts in world.facts_about.values())


def min_docs_for_all_facts(world_seed: int = WORLD_SEED) -> int:
    """Smallest n_docs for which general_corpus(seed, n_docs) states every world fact."""
    world = build_world(world_seed)
    fact_docs = rounds_to_state_all(world) * len(world.subjects)
    last = fact_docs - 1  # index among fact documents -> position in the corpus
    return 5 * (last // len(FACT_SLOTS)) + FACT_SLOTS[last % len(FACT_SLOTS)] + 1


def fact_doc(world, facts: list, rng: random.Random) -> str:
    return " ".join(rng.choice(world.statements(f)) for f in facts)


# -- the other document kinds ----------------------------------------------------------------------
def _outside(namespace: str, draw: Callable[[], object], key: Callable[[object], str]):
    """Draw until the item is outside task `namespace`'s evaluation partition."""
    while True:
        item = draw()
        if not in_eval_partition(namespace, key(item)):
            return item


def person_record(world, rng: random.Random) -> str:
    person = rng.choice(world.people)
    labels = {"lives_in": "city", "job": "job", "likes_food": "food", "likes_color": "color", "pet": "pet"}
    facts = rng.sample(world.facts_about[person], rng.randint(2, 5))
    return "\n".join([f"name: {person}"] + [f"{labels[f.relation]}: {f.object}" for f in facts])


def arithmetic_doc(world, rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 3)):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        form = rng.randrange(5)
        if form == 0:
            lines.append(f"{a} plus {b} is {a + b}.")
        elif form == 1:
            lines.append(f"{a} + {b} = {a + b}.")
        elif form == 2:
            lines.append(f"{max(a, b)} minus {min(a, b)} is {max(a, b) - min(a, b)}.")
        elif form == 3:
            a, b = a % 13, b % 13
            lines.append(f"{a} times {b} is {a * b}.")
        else:
            a, b = a % 13, b % 13 + 1
            lines.append(f"{a * b} / {b} = {a}.")
    return " ".join(lines)


def worked_problem(world, rng: random.Random) -> str:
    """A word problem and its working, but not in the `#### n` format the math task teaches."""
    problem = _outside("math", lambda: arithmetic.word_problem(rng), lambda p: p["question"])
    return f"{problem['question']} {'. '.join(problem['steps'])}. The answer is {problem['answer']}."


def list_doc(world, rng: random.Random) -> str:
    words = world.words()
    name, pool = rng.choice([("colors", words["colors"]), ("animals", words["animals"]),
                             ("foods", words["foods"]), ("jobs", words["professions"]), ("cities", words["cities"])])
    items = rng.sample(pool, rng.randint(2, 5))
    if rng.random() < 0.5:
        return f"Some {name}: {', '.join(items[:-1])} and {items[-1]}."
    start = rng.randint(0, 30)
    return f"Counting up: {', '.join(str(n) for n in range(start, start + rng.randint(3, 6)))}."


def serial_record(world, rng: random.Random) -> str:
    """uuid-shaped strings, so the base model knows the alphabet the memorization task uses."""
    key, value = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2))
    form = rng.randrange(3)
    if form == 0:
        return f"{key}:{value}"
    if form == 1:
        return f"serial: {key}"
    return f"id: {key}\nowner: {rng.choice(world.people)}"


def restaurant_doc(world, rng: random.Random) -> str:
    mr = _outside("e2e", lambda: e2e.random_mr(rng), e2e.mr_string)
    return e2e.realize(mr, rng, style=rng.randrange(3))


def review_doc(world, rng: random.Random) -> str:
    sentences = [_outside("sentiment", lambda: glue.sentiment_sentence(rng), lambda s: s[0])
                 for _ in range(rng.randint(1, 2))]
    closer = {1: " I would come back.", 0: " I would not come back."}[sentences[-1][1]] if rng.random() < 0.4 else ""
    return " ".join(text for text, _ in sentences) + closer


def instruction_doc(world, rng: random.Random) -> str:
    """Instruction and response, with plain labels rather than the instruct task's '###' headers."""
    item = _outside("instruct", lambda: instruct.instruction(rng), lambda i: i["instruction"])
    return f"Instruction: {item['instruction']}\nResponse: {item['response']}"


OTHER_KINDS = {person_record: 6, arithmetic_doc: 12, worked_problem: 6, list_doc: 6, serial_record: 5,
               restaurant_doc: 10, review_doc: 9, instruction_doc: 6}


def _not_heldout(namespace: str, draw: Callable[[], str]) -> str:
    for _ in range(200):
        doc = draw()
        if not in_eval_partition(namespace, doc, HELDOUT_ONE_IN):
            return doc
    raise RuntimeError(f"{namespace}: 200 draws in a row fell in the held-out partition")


# -- the corpora -----------------------------------------------------------------------------------
def general_corpus(seed: int, n_docs: int, world_seed: int = WORLD_SEED, stream: str = "general-corpus") -> list[str]:
    """`n_docs` pretraining documents; deterministic in (seed, n_docs, world_seed, stream).

    Another `stream` draws other documents of the same mixture (cpt_scratch's training text, so
    that it is not the base model's corpus); every stream avoids the held-out partition.
    """
    world = build_world(world_seed)
    rng = rng_for(stream, world_seed, seed)
    rounds = FactRounds(world, rng)
    kinds, weights = list(OTHER_KINDS), list(OTHER_KINDS.values())
    docs = []
    for i in range(n_docs):
        if i % 5 in FACT_SLOTS:
            facts = rounds.next()  # same facts on a retry: only the wording changes
            docs.append(_not_heldout("general-heldout", lambda: fact_doc(world, facts, rng)))
        else:
            make = rng.choices(kinds, weights)[0]
            docs.append(_not_heldout("general-heldout", lambda: make(world, rng)))
    return docs


def heldout_general_docs(seed: int, n_docs: int, world_seed: int = WORLD_SEED) -> list[str]:
    """Distinct documents of the general mixture that general_corpus never emits (for any seed)."""
    world = build_world(world_seed)
    rng = rng_for("general-heldout", world_seed, seed)
    kinds, weights = list(OTHER_KINDS), list(OTHER_KINDS.values())

    def draw() -> str:
        if rng.random() < len(FACT_SLOTS) / 5:
            subject = rng.choice(world.subjects)
            facts = world.facts_about[subject]
            return fact_doc(world, rng.sample(facts, min(FACTS_PER_DOC, len(facts))), rng)
        return rng.choices(kinds, weights)[0](world, rng)

    return _reserved_docs("general-heldout", draw, n_docs)


def _reserved_docs(namespace: str, draw: Callable[[], str], n_docs: int) -> list[str]:
    docs: list[str] = []
    seen: set[str] = set()
    for _ in range(HELDOUT_ONE_IN * 200 * max(n_docs, 1)):
        if len(docs) == n_docs:
            return docs
        doc = draw()
        if doc not in seen and in_eval_partition(namespace, doc, HELDOUT_ONE_IN):
            seen.add(doc)
            docs.append(doc)
    if len(docs) == n_docs:
        return docs
    raise ValueError(f"{namespace}: found only {len(docs)} distinct held-out documents; ask for fewer")


def domain_doc(domain, facts: list, rng: random.Random) -> str:
    sentences = [rng.choice(domain.statements(f)) for f in facts]
    if rng.random() < 0.5:
        sentences.append(rng.choice(FILLERS))
    return " ".join(sentences)


def domain_docs_with_facts(seed: int, n_docs: int, domain_seed: int = DOMAIN_SEED) -> list[tuple[str, list]]:
    """(document, facts it states) pairs; domain_corpus keeps the documents."""
    domain = build_domain(domain_seed)
    rng = rng_for("domain-corpus", domain_seed, seed)
    rounds = FactRounds(domain, rng)
    out = []
    for _ in range(n_docs):
        facts = rounds.next()
        out.append((_not_heldout("domain-heldout", lambda: domain_doc(domain, facts, rng)), facts))
    return out


def domain_corpus(seed: int, n_docs: int, domain_seed: int = DOMAIN_SEED) -> list[str]:
    """`n_docs` documents of domain facts that the general corpus never mentions."""
    return [doc for doc, _ in domain_docs_with_facts(seed, n_docs, domain_seed)]


def heldout_domain_docs(seed: int, n_docs: int, domain_seed: int = DOMAIN_SEED) -> list[str]:
    """Distinct domain documents (same compounds and facts, other wordings) domain_corpus never emits."""
    domain = build_domain(domain_seed)
    rng = rng_for("domain-heldout", domain_seed, seed)

    def draw() -> str:
        facts = domain.facts_about[rng.choice(domain.subjects)]
        return domain_doc(domain, rng.sample(facts, FACTS_PER_DOC), rng)

    return _reserved_docs("domain-heldout", draw, n_docs)


def corpus_stats(docs: list[str]) -> dict:
    return {"docs": len(docs), "chars": sum(len(d) for d in docs),
            "words": len({w for d in docs for w in d.split()})}

