"""E2E NLG: restaurant meaning representation (MR) -> one-sentence-or-three description.

Paper source: `GEM/e2e_nlg` (gem_id, meaning_representation, target, references). Train has one
record per (MR, reference) row; validation/test one record per distinct MR with all its references
(what the E2E metrics score against), `target` = the first reference.
Tiny source: E2E-style MRs over E2E's attribute set, each realized 2-4 ways from templates.
"""
from __future__ import annotations

import random

from tasks import hub, prompts
from tasks.sampling import draw_splits, rng_for, with_ids
from tasks.spec import TaskSpec
from tasks.world import with_article

NAMES = ["The Eagle", "The Golden Curry", "Blue Spice", "The Mill", "Zizzi", "Aromi", "The Phoenix", "Cotto",
         "The Punter", "Giraffe", "Strada", "The Vaults", "Fitzbillies", "Browns Cambridge", "The Wrestlers",
         "Wildwood", "Alimentum", "Clowns", "The Cricketers", "Loch Fyne", "The Rice Boat", "Midsummer House",
         "Green Man", "The Dumpling Tree", "The Olive Grove", "Cocum", "The Twenty Two", "Bibimbap House"]
VALUES = {  # E2E's attributes, in E2E's order (name first)
    "eatType": ["coffee shop", "pub", "restaurant"],
    "food": ["French", "Italian", "Chinese", "Indian", "Japanese", "English", "Fast food"],
    "priceRange": ["cheap", "moderate", "high", "less than £20", "£20-25", "more than £30"],
    "customer rating": ["low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"],
    "area": ["riverside", "city centre"],
    "familyFriendly": ["yes", "no"],
    "near": ["Burger King", "Café Sicilia", "The Bakers", "Rainbow Vegetarian Café", "Crowne Plaza Hotel",
             "Raja Indian Cuisine", "Avalon", "All Bar One", "The Portland Arms", "Ranch", "Yippee Noodle Bar",
             "Café Rouge", "The Sorrento", "Clare Hall", "Café Brazil", "The Six Bells"],
}
PRICE = {"cheap": ["It is cheap.", "Prices are low.", "It is inexpensive."],
         "moderate": ["It is moderately priced.", "Prices are moderate."],
         "high": ["It is expensive.", "Prices are high."],
         "less than £20": ["It costs less than £20.", "Prices are less than £20."],
         "£20-25": ["Prices range from £20-25.", "It costs £20-25."],
         "more than £30": ["It costs more than £30.", "Prices are more than £30."]}
RATING = ["It has a {r} customer rating.", "Customers rate it {r}.", "Its customer rating is {r}."]
FAMILY = {"yes": ["It is family friendly.", "It is kid friendly.", "Children are welcome."],
          "no": ["It is not family friendly.", "It is not kid friendly.", "Children are not welcome."]}
AREA = {"riverside": [" in the riverside area", " by the riverside"],
        "city centre": [" in the city centre", " in the centre of the city"]}


def random_mr(rng: random.Random) -> dict:
    """name plus 2-7 of the other attributes, in E2E's order."""
    chosen = set(rng.sample(list(VALUES), rng.randint(2, len(VALUES))))
    mr = {"name": rng.choice(NAMES)}
    mr.update({attr: rng.choice(values) for attr, values in VALUES.items() if attr in chosen})
    return mr


def mr_string(mr: dict) -> str:
    return ", ".join(f"{attr}[{value}]" for attr, value in mr.items())


def realize(mr: dict, rng: random.Random, style: int) -> str:
    """One reference for `mr` in opening style 0-2, then price/rating/family sentences in random order."""
    food = mr.get("food", "").replace("Fast food", "fast food")
    kind = mr.get("eatType", "place")
    where = rng.choice(AREA[mr["area"]]) if "area" in mr else ""
    near = f" {rng.choice(['near', 'close to'])} {mr['near']}" if "near" in mr else ""
    if style == 0:
        opening = f"{mr['name']} is {with_article(f'{food} {kind}'.strip())}{where}{near}."
    elif style == 1 and (where or near):
        serving = f" serving {food}" if food == "fast food" else f" serving {food} food" if food else ""
        opening = f"Located{where}{near}, {mr['name']} is {with_article(kind)}{serving}."
    else:
        opening = f"There is {with_article(f'{food} {kind}'.strip())} called {mr['name']}{where}{near}."
    extras = []
    if "priceRange" in mr:
        extras.append(rng.choice(PRICE[mr["priceRange"]]))
    if "customer rating" in mr:
        extras.append(rng.choice(RATING).format(r=mr["customer rating"]))
    if "familyFriendly" in mr:
        extras.append(rng.choice(FAMILY[mr["familyFriendly"]]))
    rng.shuffle(extras)
    return " ".join([opening] + extras)


def references(mr: dict, rng: random.Random) -> list[str]:
    """2-4 distinct realizations (styles and sentence orders differ)."""
    wanted = rng.randint(2, 4)
    refs: list[str] = []
    for attempt in range(40):
        ref = realize(mr, rng, style=attempt % 3)
        if ref not in refs:
            refs.append(ref)
        if len(refs) == wanted:
            break
    return refs


def make_item(rng: random.Random) -> dict:
    mr = random_mr(rng)
    return {"mr": mr_string(mr), "references": references(mr, rng)}


def generate_tiny(seed: int, sizes: dict) -> dict:
    # Every MR has >= 2 references, so half as many train MRs give enough train records.
    mr_sizes = {**sizes, "train": (sizes["train"] + 1) // 2}
    drawn = draw_splits(make_item, lambda item: item["mr"], mr_sizes, rng_for("e2e", seed), "e2e")
    train = [{"prompt": prompts.E2E.format(mr=item["mr"]), "target": ref, "references": item["references"]}
             for item in drawn["train"] for ref in item["references"]][: sizes["train"]]
    splits = {"train": train}
    for split in ("validation", "test"):
        splits[split] = [{"prompt": prompts.E2E.format(mr=item["mr"]), "target": item["references"][0],
                          "references": item["references"]} for item in drawn[split]]
    return with_ids(splits, "e2e")


def load_paper(*, hub_id: str = "GEM/e2e_nlg", data_dir: str | None = None, data_files=None,
               revision: str | None = None, cache_dir: str | None = None) -> dict:
    hub.require_per_split(data_files, ("train", "validation", "test"), "e2e")
    columns = ("meaning_representation", "target", "references")
    splits = {}
    for split in ("train", "validation", "test"):
        rows = hub.load_split(hub_id, None, split, data_files=data_files, data_dir=data_dir, revision=revision,
                              cache_dir=cache_dir, columns=columns)
        # One row per reference. Where a row carries the MR's full `references` list (GEM's
        # validation/test), that list is the reference set as given; otherwise the MR's targets in
        # row order. Repeated references are kept, as the official E2E scorer keeps them.
        targets_of: dict[str, list[str]] = {}
        listed_of: dict[str, list[str]] = {}
        for row in rows:
            mr = row["meaning_representation"]
            targets_of.setdefault(mr, []).append(row["target"])
            if row["references"] and mr not in listed_of:
                listed_of[mr] = [ref for ref in row["references"] if ref]
        refs_of = {mr: listed_of.get(mr) or [t for t in targets if t] for mr, targets in targets_of.items()}
        if split == "train":
            records = [{"id": f"e2e-train-{row.get('gem_id', i)}",
                        "prompt": prompts.E2E.format(mr=row["meaning_representation"]),
                        "target": row["target"], "references": refs_of[row["meaning_representation"]]}
                       for i, row in enumerate(rows)]
        else:
            records = [{"id": f"e2e-{split}-{i:05d}", "prompt": prompts.E2E.format(mr=mr), "target": refs[0],
                        "references": refs} for i, (mr, refs) in enumerate(refs_of.items())]
        splits[split] = records
    return splits


SPECS = [TaskSpec(
    name="e2e", family="e2e_nlg", kind="causal_lm", num_labels=None,
    metrics=["bleu", "nist", "meteor", "rouge_l", "cider"], lm_eval_tasks=[],
    required_columns=("id", "prompt", "target", "references"),
    default_sizes={"train": 600, "validation": 50, "test": 100},
    generator=generate_tiny, paper_loader=load_paper,
    description="restaurant meaning representation -> description, 2-4 references per MR",
    paper_source="GEM/e2e_nlg (VeRA/LoRA GPT-2 setting)",
)]
