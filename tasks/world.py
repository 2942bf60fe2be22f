"""A small, seeded, closed world: the facts the tiny profile's pretraining corpus states.

People, cities and countries are invented and their attributes drawn from a seeded RNG (so no
real-world knowledge contradicts them); animals, foods and professions carry fixed everyday facts.
Every fact is a (subject, relation, object) triple with several sentence templates (the corpus
picks one) and one question template (commonsense-tiny asks it), so a test can check that each
question's answer is stated in the corpus by looking for any of the fact's sentences.

The world is fixed by WORLD_SEED, not by a run's seed: runs with seeds 0, 21, 42... must all ask
about the same facts the one pretrained base model has read.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass

WORLD_SEED = 20240

FIRST_NAMES = [
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin", "Leo",
    "Mia", "Nils", "Olga", "Paul", "Rosa", "Sam", "Tina", "Umar", "Vera", "Walter", "Yara", "Zoe",
    "Alma", "Bruno", "Cora", "Dario", "Elsa", "Finn", "Gina", "Hans", "Iris", "Jakob", "Lena", "Marco",
    "Nora", "Oskar", "Pia", "Rafael", "Sara", "Theo", "Ulla", "Viktor", "Wanda", "Kurt", "Maja", "Omar",
]
LAST_NAMES = [
    "Berg", "Costa", "Dahl", "Evans", "Fischer", "Garcia", "Holm", "Ivanov", "Jensen", "Keller", "Lund",
    "Moreau", "Novak", "Olsen", "Petrov", "Quinn", "Rossi", "Schmidt", "Torres", "Ueda", "Vogel", "Weber",
    "Young", "Zeller", "Adler", "Brandt", "Carter", "Duval", "Engel", "Falk",
]
CITY_PARTS = (
    ["Ash", "Bel", "Brook", "Clear", "Dun", "Elm", "Fair", "Glen", "High", "Iron", "Kings", "Lake",
     "Mill", "North", "Oak", "Pine", "Red", "Rock", "Silver", "Stone", "West", "Wolf", "Green", "Fox"],
    ["ford", "ton", "field", "burg", "mouth", "haven", "wick", "dale", "port", "stead", "moor", "bridge"],
)
COUNTRIES = ["Norland", "Estavia", "Corvania", "Meridia", "Valdoria", "Ostmark", "Sunara", "Kaldor"]
LANGUAGES = ["Norlandic", "Estavian", "Corvish", "Meridian", "Valdorian", "Ostic", "Sunari", "Kaldric"]
CURRENCIES = ["crown", "mark", "florin", "thaler", "shell", "ducat", "talon", "penny"]
COLORS = ["red", "blue", "green", "yellow", "orange", "purple", "white", "black", "brown", "pink", "gray"]
TASTES = ["sweet", "sour", "bitter", "salty", "mild", "spicy"]

# Everyday facts: fixed, like the commonsense a real model brings to its benchmarks.
FOODS = {  # plural noun -> (color, taste)
    "apples": ("red", "sweet"), "lemons": ("yellow", "sour"), "carrots": ("orange", "sweet"),
    "bananas": ("yellow", "sweet"), "grapes": ("purple", "sweet"), "tomatoes": ("red", "mild"),
    "olives": ("green", "salty"), "plums": ("purple", "sour"), "pears": ("green", "sweet"),
    "cherries": ("red", "sweet"), "peas": ("green", "mild"), "onions": ("white", "bitter"),
    "peppers": ("red", "spicy"), "melons": ("orange", "sweet"), "figs": ("brown", "sweet"),
    "limes": ("green", "sour"),
}
ANIMALS = {  # singular -> (plural, legs or None, sound or None, where they live)
    "cat": ("cats", 4, "meow", "in houses"), "dog": ("dogs", 4, "woof", "in houses"),
    "cow": ("cows", 4, "moo", "on farms"), "horse": ("horses", 4, "neigh", "on farms"),
    "sheep": ("sheep", 4, "baa", "on farms"), "duck": ("ducks", 2, "quack", "in ponds"),
    "owl": ("owls", 2, "hoot", "in forests"), "frog": ("frogs", 4, "croak", "in ponds"),
    "spider": ("spiders", 8, None, "in webs"), "snake": ("snakes", None, "hiss", "in deserts"),
    "fish": ("fish", None, None, "in rivers"), "bee": ("bees", 6, "buzz", "in hives"),
    "goat": ("goats", 4, "baa", "on hills"), "pig": ("pigs", 4, "oink", "on farms"),
    "hen": ("hens", 2, "cluck", "on farms"), "mouse": ("mice", 4, "squeak", "in fields"),
}
PETS = ["cat", "dog", "rabbit", "parrot", "hamster", "turtle", "goldfish", "canary"]
PROFESSIONS = {  # profession -> where it is done
    "baker": "a bakery", "teacher": "a school", "doctor": "a hospital", "farmer": "a farm",
    "pilot": "an airport", "nurse": "a clinic", "painter": "a studio", "carpenter": "a workshop",
    "engineer": "a factory", "writer": "a library", "fisher": "a harbor", "singer": "a theater",
    "lawyer": "a court", "chef": "a kitchen", "tailor": "a shop", "miner": "a mine",
}


def with_article(noun: str) -> str:
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    object: str


@dataclass(frozen=True)
class Relation:
    """How a relation is said and asked. Templates use {s} and {o}; {a_s}/{A_s} add an article
    (capitalized), {pl_s}/{Pl_s} the plural, {a_o} an article on the object."""
    statements: tuple[str, ...]
    question: str
    object_pool: str  # which world pool the multiple-choice distractors come from


RELATIONS = {
    "lives_in": Relation(("{s} lives in {o}.", "{s} has a home in {o}.", "{s} is a resident of {o}."),
                         "In which city does {s} live?", "cities"),
    "job": Relation(("{s} works as {a_o}.", "{s} is {a_o} by trade.", "{s} earns a living as {a_o}."),
                    "What is the job of {s}?", "professions"),
    "likes_food": Relation(("The favorite food of {s} is {o}.", "{s} likes to eat {o} more than anything.",
                            "Of all foods, {s} loves {o} the most."),
                           "What is the favorite food of {s}?", "foods"),
    "likes_color": Relation(("The favorite color of {s} is {o}.", "{s} likes the color {o} best."),
                            "What is the favorite color of {s}?", "colors"),
    "pet": Relation(("{s} has a pet {o}.", "{s} keeps {a_o} as a pet.", "The pet of {s} is {a_o}."),
                    "What kind of pet does {s} have?", "pets"),
    "in_country": Relation(("{s} is a city in {o}.", "The city of {s} lies in {o}."),
                           "In which country is {s}?", "countries"),
    "known_for": Relation(("{s} is famous for its {o}.", "People in {s} are proud of their {o}."),
                          "What food is {s} famous for?", "foods"),
    "capital": Relation(("The capital of {s} is {o}.", "{o} is the capital of {s}."),
                        "What is the capital of {s}?", "cities"),
    "language": Relation(("People in {s} speak {o}.", "The language of {s} is {o}."),
                         "What language do people speak in {s}?", "languages"),
    "currency": Relation(("The currency of {s} is the {o}.", "In {s}, people pay with the {o}."),
                         "What is the currency of {s}?", "currencies"),
    "legs": Relation(("{A_s} has {o} legs.", "{Pl_s} have {o} legs."),
                     "How many legs does {a_s} have?", "leg_counts"),
    "sound": Relation(("{A_s} says {o}.", "The sound {a_s} makes is {o}."),
                      "What does {a_s} say?", "sounds"),
    "habitat": Relation(("{Pl_s} live {o}.", "You can find {pl_s} {o}."),
                        "Where do {pl_s} live?", "habitats"),
    "color": Relation(("{S} are {o}.", "Ripe {s} are {o}."), "What color are {s}?", "colors"),
    "taste": Relation(("{S} taste {o}.", "{S} have a {o} taste."), "How do {s} taste?", "tastes"),
    "workplace": Relation(("{A_s} works in {o}.", "The place where {a_s} works is {o}."),
                          "Where does {a_s} work?", "workplaces"),
}


class FactWorld:
    """What every world of facts offers its generators, given `relations` and `pools` and a `_fill`
    that puts a fact into a template (the general world here, the biomedical domain in biomed.py)."""

    relations: dict[str, Relation] = {}
    pools: dict[str, list[str]]

    def _fill(self, template: str, fact: Fact) -> str:
        raise NotImplementedError

    def statements(self, fact: Fact) -> list[str]:
        """Every sentence the corpus may use to state `fact`."""
        return [self._fill(t, fact) for t in self.relations[fact.relation].statements]

    def question(self, fact: Fact) -> str:
        return self._fill(self.relations[fact.relation].question, fact)

    def distractors(self, fact: Fact, rng: random.Random, k: int = 3) -> list[str]:
        pool = [x for x in self.pools[self.relations[fact.relation].object_pool] if x != fact.object]
        return rng.sample(pool, min(k, len(pool)))


class World(FactWorld):
    """All entities and facts for one world seed; build it with `build_world(seed)` (cached)."""

    relations = RELATIONS

    def __init__(self, seed: int = WORLD_SEED, n_people: int = 150, n_cities: int = 30):
        rng = random.Random(f"world:{seed}")
        names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        self.people = rng.sample(names, n_people)
        cities = [a + b for a in CITY_PARTS[0] for b in CITY_PARTS[1]]
        self.cities = rng.sample(cities, n_cities)
        self.countries = list(COUNTRIES)
        self.plurals = {animal: forms[0] for animal, forms in ANIMALS.items()}
        self.pools = {
            "cities": self.cities, "countries": self.countries, "professions": list(PROFESSIONS),
            "foods": list(FOODS), "colors": COLORS, "pets": PETS, "languages": LANGUAGES,
            "currencies": CURRENCIES, "tastes": TASTES, "leg_counts": ["2", "4", "6", "8"],
            "sounds": sorted({a[2] for a in ANIMALS.values() if a[2]}),
            "habitats": sorted({a[3] for a in ANIMALS.values()}),
            "workplaces": sorted(set(PROFESSIONS.values())),
        }
        self.facts = self._draw_facts(rng)
        self.facts_about: dict[str, list[Fact]] = {}
        self.facts_with: dict[str, list[Fact]] = {}  # by relation
        for fact in self.facts:
            self.facts_about.setdefault(fact.subject, []).append(fact)
            self.facts_with.setdefault(fact.relation, []).append(fact)
        self.subjects = list(self.facts_about)
        self._words = {"people": self.people, "first_names": sorted({p.split()[0] for p in self.people}),
                       "cities": self.cities, "animals": list(ANIMALS), "foods": list(FOODS), "colors": COLORS,
                       "professions": list(PROFESSIONS), "countries": self.countries}

    def _draw_facts(self, rng: random.Random) -> list[Fact]:
        facts = []
        # Every country gets at least one city, its capital; the rest are spread at random.
        home_country = {city: self.countries[i % len(self.countries)] for i, city in enumerate(self.cities)}
        for country, language, currency in zip(self.countries, LANGUAGES, CURRENCIES):
            capital = next(c for c in self.cities if home_country[c] == country)
            facts += [Fact(country, "capital", capital), Fact(country, "language", language),
                      Fact(country, "currency", currency)]
        for city in self.cities:
            facts += [Fact(city, "in_country", home_country[city]),
                      Fact(city, "known_for", rng.choice(list(FOODS)))]
        for person in self.people:
            facts += [Fact(person, "lives_in", rng.choice(self.cities)),
                      Fact(person, "job", rng.choice(list(PROFESSIONS))),
                      Fact(person, "likes_food", rng.choice(list(FOODS))),
                      Fact(person, "likes_color", rng.choice(COLORS)),
                      Fact(person, "pet", rng.choice(PETS))]
        for animal, (_, legs, sound, habitat) in ANIMALS.items():
            if legs:
                facts.append(Fact(animal, "legs", str(legs)))
            if sound:
                facts.append(Fact(animal, "sound", sound))
            facts.append(Fact(animal, "habitat", habitat))
        for food, (color, taste) in FOODS.items():
            facts += [Fact(food, "color", color), Fact(food, "taste", taste)]
        for profession, place in PROFESSIONS.items():
            facts.append(Fact(profession, "workplace", place))
        return facts

    def _fill(self, template: str, fact: Fact) -> str:
        s, o = fact.subject, fact.object
        plural = self.plurals.get(s, s + "s")
        return template.format(s=s, S=capitalized(s), o=o, a_o=with_article(o), a_s=with_article(s),
                               A_s=capitalized(with_article(s)), pl_s=plural, Pl_s=capitalized(plural))


    def words(self) -> dict[str, list[str]]:
        """Plain word pools for other generators (kept here so the vocabulary stays one modest set).
        Shared lists: callers sample from them and must not modify them."""
        return self._words


@functools.lru_cache(maxsize=4)
def build_world(seed: int = WORLD_SEED) -> World:
    return World(seed)
