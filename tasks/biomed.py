"""The continual-pretraining domain: invented drugs and their properties, absent from the general world.

Compound names (velotinib, zoramab...), protein targets (KRT4 kinase...) and conditions (Orath
syndrome...) are built from syllables the general corpus never uses, so every domain fact is new to
the base model: continual pretraining has something to teach, and its forgetting can be measured.
Same shape as tasks.world.World: facts, statements(fact), question(fact), distractors(fact, rng).
"""
from __future__ import annotations

import functools
import random

from tasks.world import Fact, FactWorld, Relation, capitalized

DOMAIN_SEED = 31

PREFIXES = ["vel", "zor", "tam", "quin", "dex", "mor", "pral", "cet", "lum", "ferr", "brel", "tov", "sar",
            "nix", "vad", "orl"]
LINKS = ["o", "a", "i", "e", "u"]
SUFFIXES = ["tinib", "mab", "vir", "zole", "pril", "statin", "cillin", "dronate"]
PROTEIN_LETTERS = "BDKLMNPRSTVXZ"
PROTEIN_KINDS = ["kinase", "receptor", "protease", "channel", "transporter"]
CONDITION_PARTS = (["Or", "Tel", "Mir", "Quen", "Sal", "Dov", "Ren", "Gal", "Thos", "Pim", "Zer", "Vash"],
                   ["ath", "ine", "ow", "ard", "ish", "el"], ["syndrome", "fever", "disease", "palsy"])
SIDE_EFFECTS = ["nausea", "headache", "rash", "dizziness", "fatigue", "insomnia", "dry mouth", "itching",
                "cough", "muscle pain"]
FILLERS = ["Further studies are needed.", "The results were consistent across sites.",
           "No serious adverse events were seen.", "Dosing was once daily.", "The effect lasted for several weeks.",
           "The study was randomized and blinded."]

RELATIONS = {
    "target": Relation(("{C} binds the {o}.", "The main target of {c} is the {o}.", "{C} acts on the {o}."),
                       "Which protein does {c} act on?", "proteins"),
    "treats": Relation(("{C} is used to treat {o}.", "Doctors give {c} to patients with {o}.",
                        "In a trial of patients with {o}, {c} eased the symptoms."),
                       "Which condition is {c} used to treat?", "conditions"),
    "half_life": Relation(("{C} has a half-life of {o} hours.", "The half-life of {c} is {o} hours."),
                          "What is the half-life of {c}, in hours?", "half_lives"),
    "side_effect": Relation(("The most common side effect of {c} is {o}.", "Patients who take {c} often report {o}."),
                            "What is the most common side effect of {c}?", "side_effects"),
    "year": Relation(("{C} was first made in {o}.", "Chemists first made {c} in {o}."),
                     "In which year was {c} first made?", "years"),
}


class DomainWorld(FactWorld):
    relations = RELATIONS

    def __init__(self, seed: int = DOMAIN_SEED, n_compounds: int = 60):
        rng = random.Random(f"domain:{seed}")
        names = [p + link + s for p in PREFIXES for link in LINKS for s in SUFFIXES]
        self.compounds = rng.sample(names, n_compounds)
        proteins: set[str] = set()
        while len(proteins) < 40:
            code = "".join(rng.choice(PROTEIN_LETTERS) for _ in range(3)) + str(rng.randint(1, 9))
            proteins.add(f"{code} {rng.choice(PROTEIN_KINDS)}")
        conditions = [f"{a}{b} {kind}" for a in CONDITION_PARTS[0] for b in CONDITION_PARTS[1]
                      for kind in CONDITION_PARTS[2]]
        self.pools = {"proteins": sorted(proteins), "conditions": rng.sample(conditions, 40),
                      "side_effects": SIDE_EFFECTS, "half_lives": [str(h) for h in range(2, 49)],
                      "years": [str(y) for y in range(1961, 2020)]}
        self.facts = []
        for compound in self.compounds:
            self.facts += [Fact(compound, relation, rng.choice(self.pools[RELATIONS[relation].object_pool]))
                           for relation in RELATIONS]
        self.facts_about: dict[str, list[Fact]] = {}
        for fact in self.facts:
            self.facts_about.setdefault(fact.subject, []).append(fact)
        self.subjects = list(self.compounds)

    def _fill(self, template: str, fact: Fact) -> str:
        return template.format(c=fact.subject, C=capitalized(fact.subject), o=fact.object)

    def vocabulary(self) -> list[str]:
        """The invented names: none of them may occur in the general corpus."""
        return self.compounds + self.pools["proteins"] + self.pools["conditions"]


@functools.lru_cache(maxsize=4)
def build_domain(seed: int = DOMAIN_SEED) -> DomainWorld:
    return DomainWorld(seed)
