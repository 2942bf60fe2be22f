"""The README says what its sources say, cell by cell and word for word.

A results table in README.md is preceded by a line `Source: <file>` naming a committed file
(results/published/… or benchmarks/results/…). Each such table is a *view* of one table of its
source (SPECS, keyed by the README table's header): every README row is found in the source by its
key (task, claim, method), and every README cell is compared with the cell of that row and of the
column it stands for — numbers to the README's decimals (12.1 for 12.095), words exactly (verdicts,
method names, yes/no, metric names through the spec's labels). A claim's prose "numbers" cell is
checked against that claim's own section of replication.md (its numbers, and any verdict word it
quotes). The Performance table is the benchmark's committed table, verbatim.

Numbers in the prose of the results sections are checked too: "N jobs in M min S s" and "trained at
commit X" against the provenance.json of the published folder the paragraph names, and every other
number against the files the section names (its Source lines, the published folders' provenance).

`test_the_checker_catches_each_false_edit` applies edits a reviewer made to a copy of the README
(verdicts flipped, numbers and names swapped) and expects each to be caught.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS_SECTIONS = ("What the tiny profile does", "Replication:", "A real pretrained model", "The zoo", "Performance")
NUMBER = re.compile(r"(?:(?<!\w)[-+])?\d+(?:\.\d+)?(?:e[-+]?\d+)?")   # SST-2 is 2, not -2
SOURCE = re.compile(r"`((?:results/published|benchmarks/results)/[^`]+)`")


# -- reading Markdown --------------------------------------------------------------------------------
def normalise(text: str) -> str:
    """Unicode minus as '-', no bold, no thin spaces or thousands separators, single spaces."""
    text = text.replace("−", "-").replace("\u2009", "").replace("**", "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def numbers(text: str) -> list[str]:
    return NUMBER.findall(normalise(text))


def words(text: str) -> str:
    """The text with every number replaced by '#': what must match word for word."""
    return NUMBER.sub("#", normalise(text))


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@dataclass
class Table:
    before: str               # the nearest non-blank line above the table
    header: list[str]
    rows: list[list[str]]
    heading: str = ""         # the nearest Markdown heading above (sources: "## Claim 1: …")


def md_tables(lines: list[str]) -> list[Table]:
    found, i, heading = [], 0, ""
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("#").strip()
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-|: ]+\|$", lines[i + 1].strip()):
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            found.append(Table(before, cells(lines[i]), [cells(r) for r in lines[i + 2:j]], heading))
            i = j
        else:
            i += 1
    return found


def sections(text: str) -> dict[str, list[str]]:
    out, current, in_code = {}, "top", False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("## "):
            current = line[3:].strip()
        out.setdefault(current, []).append("" if in_code else line)
    return out


def results_sections(text: str) -> dict[str, list[str]]:
    return {t: lines for t, lines in sections(text).items() if t.startswith(RESULTS_SECTIONS)}


# -- comparing cells ----------------------------------------------------------------------------------
def matches(quoted: str, source: float) -> bool:
    """`quoted` is `source` as written or rounded to the quoted decimals (3 significant digits for e-notation)."""
    value = float(quoted)
    if "e" in quoted.lower():
        return abs(source - value) <= abs(value) * 5e-3
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(source - value) <= 0.5 * 10 ** -decimals + 1e-9


def same_cell(readme: str, source: str) -> bool:
    """Words equal, and the numbers pairwise: the README's as the source's, rounded."""
    ours, theirs = numbers(readme), numbers(source)
    return (words(readme) == words(source) and len(ours) == len(theirs)
            and all(matches(a, float(b)) for a, b in zip(ours, theirs)))


# -- what each README table is a view of ---------------------------------------------------------------
def claim_key(cell: str) -> str:
    """README '1 MoRA > LoRA, …' → '1'; 'MoRA Table 3 …' → '6' (replication.md's sixth claim)."""
    if normalise(cell).startswith("MoRA Table 3"):
        return "6"
    found = re.match(r"\d+", normalise(cell))
    return found.group(0) if found else cell


METRIC_NAMES = {"acc": "accuracy", "bleu": "BLEU (official E2E scorer)", "exact_match": "exact match",
                "prompt_pass_rate": "prompt pass rate (IFEval checks)", "char_acc": "character accuracy",
                "word_perplexity": "word perplexity"}
UNIT_NAMES = {"points": "points", "log-ratio": "log ratio"}


@dataclass
class View:
    """A README table as a view of one source table: `pick` chooses that table among the source's,
    `key` maps README rows to source rows, `columns` README column → how to get the expected cell
    from the source row (a source column name, or a function of the row)."""
    pick: Callable[[Table], bool]
    key: tuple[str, str]                              # (README column, source column)
    columns: dict[str, str | Callable[[dict], str]]
    readme_key: Callable[[str], str] = lambda cell: normalise(cell)
    rows: Callable[[dict], bool] = lambda row: True   # which source rows the README may show
    names: dict[str, str] = field(default_factory=dict)  # per-table metric names (README wording)


def metric_name(view_names: dict) -> Callable[[dict], str]:
    return lambda row: view_names.get(row["metric"], METRIC_NAMES.get(row["metric"], row["metric"]))


HEADLINE_COLUMNS = {"best method": "best", "its score": "best value", "its trainable params": "best params",
                    "LoRA": "lora value", "untrained base": "base value", "format-only floor": "floor"}
SPREAD_NAMES = {"bleu": "BLEU", "prompt_pass_rate": "prompt pass rate"}
REAL_NAMES = {"char_acc": "character accuracy, end of training", "word_perplexity": "domain word perplexity"}
HEADLINE = View(pick=lambda t: "best value" in t.header, key=("task", "task"),
                columns={"metric": metric_name({}), **HEADLINE_COLUMNS})
REAL_HEADLINE = View(pick=lambda t: "best value" in t.header, key=("task", "task"),
                     columns={"metric": metric_name(REAL_NAMES), **HEADLINE_COLUMNS})
SPREAD_VERDICTS = View(pick=lambda t: t.heading == "Verdicts", key=("claim", "claim"), readme_key=claim_key,
                       columns={"this run": "tiny", "AVX2-limited rerun": "tiny_avx2", "stable": "stable"})
SPREAD_TASKS = View(pick=lambda t: t.heading.startswith("Per task"), key=("task", "task"),
                    rows=lambda row: row["rerun"] == "tiny_avx2",
                    columns={"metric": lambda row: f"{SPREAD_NAMES.get(row['metric'], METRIC_NAMES[row['metric']])} "
                                                   f"({UNIT_NAMES[row['unit']]})",
                             "cells moved": lambda row: f"{row['moved']} of {row['cells']}",
                             "median move": "median move", "largest move": "largest move", "at": "largest at",
                             "best method": "best method"})
CLAIMS = View(pick=lambda t: t.header[:1] == ["claim"] and "statement" in t.header, key=("claim", "claim"),
              readme_key=claim_key, columns={"verdict": "verdict"})
LEADERBOARD = View(pick=lambda t: "Δ vs LoRA" in t.header, key=("variant", "variant"),
                   columns={c: c for c in ("rank", "metric", "n", "mean", "95% CI (min–max if n = 2)", "trainable params",
                                           "Δ vs LoRA", "Δ 95% CI", "test", "verdict")})
VERBATIM = "verbatim"

SPECS: dict[tuple[str, ...], tuple[str, View | str]] = {
    ("results/published/tiny/tables/headline.md", "task", "metric", "best method"): ("view", HEADLINE),
    ("results/published/real/tables/headline.md", "task", "metric", "best method"): ("view", REAL_HEADLINE),
    ("results/published/tiny/spread.md", "claim", "this run"): ("view", SPREAD_VERDICTS),
    ("results/published/tiny/spread.md", "task", "metric", "cells moved"): ("view", SPREAD_TASKS),
    ("results/published/replication/replication.md", "claim", "verdict", "numbers"): ("claims", CLAIMS),
    ("results/published/real/replication.md", "claim", "verdict", "numbers"): ("claims", CLAIMS),
    ("results/published/real_forgetting/tables/headline.md", "task", "metric", "best method"): ("view", REAL_HEADLINE),
    ("results/published/real_forgetting/replication.md", "claim", "verdict", "numbers"): ("claims", CLAIMS),
    ("results/published/zoo/tables/leaderboard.md", "rank", "variant"): ("view", LEADERBOARD),
    ("benchmarks/results/adapters_speed_cpu.md", "method", "trainable"): ("verbatim", VERBATIM),
    ("benchmarks/results/job_startup_cpu.md", "phase", "train job (s)"): ("verbatim", VERBATIM),
    ("benchmarks/results/job_startup_cpu.md", "job", "cold (s)"): ("verbatim", VERBATIM),
    ("benchmarks/results/dag_time_cpu.md", "stage"): ("verbatim", VERBATIM),
    ("benchmarks/results/labelled_logits_cpu.md", "task", "positions kept"): ("verbatim", VERBATIM),
}


def spec_of(source: str, header: list[str]) -> tuple[str, View | str] | None:
    return next((spec for key, spec in SPECS.items()
                 if key[0] == source and list(key[1:]) == header[:len(key) - 1]), None)


def claim_sections(text: str) -> dict[str, str]:
    """replication.md's '## Claim N: …' sections, by N."""
    parts = re.split(r"^## Claim (\d+):", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def check_table(title: str, source: str, table: Table) -> list[str]:
    path = ROOT / source
    if not path.is_file():
        return [f"{title}: {source} is not committed"]
    spec = spec_of(source, table.header)
    if spec is None:
        return [f"{title}: no spec for a table of {source} with columns {table.header}: add it to SPECS"]
    kind, view = spec
    text = path.read_text()
    source_tables = md_tables(text.splitlines())
    if kind == "verbatim":
        wanted = next((t for t in source_tables if t.header == table.header), None)
        if wanted is None or wanted.rows != table.rows:
            return [f"{title}: the table is not {source}'s table, verbatim"]
        return []
    picked = [t for t in source_tables if view.pick(t)]
    if not picked:
        return [f"{title}: {source} has no table the spec picks"]
    src = picked[0]
    rows = {}
    for row in src.rows:
        record = dict(zip(src.header, row))
        if view.rows(record):
            rows[normalise(record[view.key[1]])] = record
    problems = []
    key_at = table.header.index(view.key[0])
    for row in table.rows:
        shown = dict(zip(table.header, row))
        key = view.readme_key(row[key_at])
        if key not in rows:
            problems.append(f"{title}: row {row[key_at]!r} is not a row of {source}")
            continue
        record = rows[key]
        for column, cell in shown.items():
            if column == view.key[0]:
                continue
            if kind == "claims" and column == "numbers":
                problems += check_claim_numbers(title, source, key, cell, claim_sections(text).get(key, ""))
                continue
            how = view.columns.get(column)
            if how is None:
                problems.append(f"{title}: column {column!r} stands for no column of {source}: add it to the spec")
                continue
            expected = how(record) if callable(how) else record.get(how, "")
            if not same_cell(cell, expected):
                problems.append(f"{title}: row {row[key_at]!r}, column {column!r}: README {cell!r}, "
                                f"{source} says {expected!r}")
    return problems


VERDICT_WORDS = ("does not hold", "holds", "inconclusive")


def check_claim_numbers(title: str, source: str, claim: str, cell: str, section: str) -> list[str]:
    """A claim's prose cell: every number is one of the claim's section (rounded); a verdict word in
    parentheses is one its section's tables give."""
    if not section:
        return [f"{title}: {source} has no section for claim {claim}"]
    values = [float(n) for n in numbers(section)]
    problems = [f"{title}: claim {claim}: {n} is not a number of its section in {source}"
                for n in numbers(cell) if not any(matches(n, v) for v in values)]
    for quoted in re.findall(r"\((holds|does not hold|inconclusive)\)", normalise(cell)):
        if f"| {quoted} |" not in section:
            problems.append(f"{title}: claim {claim}: '({quoted})' is a verdict none of its section's rows give")
    return problems


def readme_problems(text: str) -> list[str]:
    """Everything the README's results sections say that their sources do not."""
    problems = []
    for title, lines in results_sections(text).items():
        tables = md_tables(lines)
        if not any(t.before.startswith("Source: ") for t in tables):
            problems.append(f"README {title!r}: no sourced results table")
        for table in tables:
            if title.startswith("Performance") or table.before.startswith("Source: "):
                sources = SOURCE.findall(table.before)
                if len(sources) != 1:
                    problems.append(f"README {title!r}: a results table needs one `Source:` file, got {table.before!r}")
                    continue
                problems += check_table(f"README {title!r}", sources[0], table)
        problems += check_prose(title, lines)
    return problems


# -- prose ---------------------------------------------------------------------------------------------
def _published(folder: str) -> dict:
    return json.loads((ROOT / folder / "provenance.json").read_text())


def prose_paragraphs(lines: list[str]) -> list[str]:
    paragraphs, current = [], []
    for line in lines + [""]:
        if not line.strip() or line.startswith("|") or line.startswith("Source: ") or line.startswith("#"):
            if current:
                paragraphs.append(" ".join(current))
            current = []
        else:
            current.append(line)
    return paragraphs


def check_prose(title: str, lines: list[str]) -> list[str]:
    """Durations, job counts and commits against the named folder's provenance; other numbers of a
    paragraph that names a published folder against that folder's files."""
    problems = []
    text = "\n".join(lines)
    for paragraph in prose_paragraphs(lines):
        folders = sorted({f for f in re.findall(r"results/published/(\w+)", paragraph)
                          if (ROOT / "results" / "published" / f / "provenance.json").is_file()})
        if not folders:
            continue
        infos = [_published(f"results/published/{f}") for f in folders]
        for jobs, minutes, seconds in re.findall(r"(\d+) jobs in (\d+) min (\d+) s", normalise(paragraph)):
            timings = [t for i in infos for t in [i["timing"], *i["timing"].get("top_ups", [])]]
            if not any(t["jobs"] == int(jobs) and round(t["wall_seconds"]) == 60 * int(minutes) + int(seconds)
                       for t in timings):
                problems.append(f"README {title!r}: '{jobs} jobs in {minutes} min {seconds} s' is not the timing "
                                f"of {', '.join(folders)}")
        for commit in re.findall(r"\b[0-9a-f]{7}\b", paragraph):
            known = [c for i in infos for c in i["trained"]["git_commits"]] + [i["published"]["git_commit"] for i in infos]
            if not any(c.startswith(commit) for c in known):
                problems.append(f"README {title!r}: commit {commit} is not in the provenance of {', '.join(folders)}")
        for match in re.findall(MOVED, normalise(paragraph)):
            moved, total = [x for x in match if x]
            if (int(moved), int(total)) not in cells_moved(folders):
                problems.append(f"README {title!r}: '{moved} of {total} cells moved' is no rerun's count in "
                                f"{', '.join(folders)}/spread.csv: {sorted(cells_moved(folders))}")
        pool = text_pool([f"results/published/{f}" for f in folders] + SOURCE.findall(text))
        checked = re.sub(r"\d+\s+jobs\s+in\s+\d+\s+min\s+\d+\s+s\b", "", paragraph)  # its timing: checked above
        for n in numbers(re.sub(r"`[^`]*`|\b[0-9a-f]{7}\b", "", checked)):
            if not any(matches(n, v) for v in pool):
                problems.append(f"README {title!r}: {n} in the prose is in none of its sources: {paragraph[:80]!r}…")
    return problems


MOVED = r"(\d+) of (?:the )?(\d+) cells moved|cells moved: (\d+) of (\d+)"


def cells_moved(folders: list[str]) -> set[tuple[int, int]]:
    """(cells that moved, cells) of each rerun in the folders' spread.csv."""
    import pandas as pd

    found = set()
    for folder in folders:
        path = ROOT / "results" / "published" / folder / "spread.csv"
        if path.is_file():
            cells = pd.read_csv(path)
            found |= {(int((cells[c] > 0).sum()), len(cells)) for c in cells if c.startswith("move ")}
    return found


def text_pool(paths: list[str]) -> list[float]:
    values = []
    for rel in dict.fromkeys(paths):
        path = ROOT / rel
        files = sorted(p for p in path.rglob("*") if p.suffix in (".md", ".json", ".csv")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and file.stat().st_size < 2_000_000:
                values += [float(n) for n in numbers(file.read_text())]
    return values


# -- the tests ----------------------------------------------------------------------------------------
def test_readme_says_what_its_sources_say():
    problems = readme_problems(README.read_text())
    assert not problems, "\n".join(problems)


def test_every_results_section_has_a_sourced_table():
    titles = set(results_sections(README.read_text()))
    for wanted in RESULTS_SECTIONS:
        assert any(t.startswith(wanted) for t in titles), f"README section {wanted!r} is missing"


# Edits a reviewer made to the README (each a false statement its sources contradict), as
# (text in the README, false text): the check must catch every one.
FALSE_EDITS = {
    "zoo gralora tie → better": ("| 315,648 | +20.9 | [-38, +79.8] | tie |", "| 315,648 | +20.9 | [-38, +79.8] | better |"),
    "zoo dora Δ +8 → +9": ("| 84,480 | +8 |", "| 84,480 | +9 |"),
    "zoo's run 52 → 42 min": ("in 52 min 34 s", "in 42 min 34 s"),
    "zoo top-up 102 → 112 jobs": ("(102 jobs in 6 min 44 s)", "(112 jobs in 6 min 44 s)"),
    "replication claim 1 holds → does not hold": (
        "| 1 MoRA > LoRA, UUID memorization | **holds** |", "| 1 MoRA > LoRA, UUID memorization | **does not hold** |"),
    "real claim 1 inconclusive → holds": (
        "| 1 MoRA > LoRA, UUID memorization | inconclusive | char accuracy over steps 10–40",
        "| 1 MoRA > LoRA, UUID memorization | **holds** | char accuracy over steps 10–40"),
    "LoRA and base swapped in the sst2 row": ("| 88 | 78,784 | 76 | 42 |", "| 88 | 78,784 | 42 | 76 |"),
    "best method mora1 → lora (sst2)": ("| sst2 | accuracy | mora1 |", "| sst2 | accuracy | lora |"),
    "stable yes → no": ("| 2 VeRA ≈ LoRA at ≥ 10× fewer params | inconclusive | inconclusive | yes |",
                        "| 2 VeRA ≈ LoRA at ≥ 10× fewer params | inconclusive | inconclusive | no |"),
    "largest move 0.0 → 2.0": ("| sst2 | accuracy (points) | 0 of 9 | 0.0 | 0.0 |",
                                "| sst2 | accuracy (points) | 0 of 9 | 0.0 | 2.0 |"),
    "uuid 8.81 → 8.31": ("| 8.81 | 78,528 |", "| 8.31 | 78,528 |"),
    "math base 2 → 1": ("| 78,848 = 78,848 | 13 | 2 |", "| 78,848 = 78,848 | 13 | 1 |"),
    "a prose duration 58 min 8 s → 48 min 8 s": ("44 jobs in\n58 min 8 s", "44 jobs in\n48 min 8 s"),
    "a Performance ratio 1.10× → 1.01×": ("| MoRA type 6 | 154,288 | 1.10× |", "| MoRA type 6 | 154,288 | 1.01× |"),
    "a verdict in a claim's numbers (holds) → (does not hold)": (
        "live rank 224 → 103–111 in every run (holds)", "live rank 224 → 103–111 in every run (does not hold)"),
    "a prose number of the spread paragraph": ("cells moved:\n0 of 81", "cells moved:\n4 of 81"),
}


@pytest.mark.parametrize("edit", sorted(FALSE_EDITS))
def test_the_checker_catches_each_false_edit(edit):
    true, false = FALSE_EDITS[edit]
    text = README.read_text()
    assert text.count(true) == 1, f"the README no longer has {true!r} once: update the edit"
    assert readme_problems(text.replace(true, false)), f"the false edit '{edit}' passed the check"


def test_cells_compare_numbers_rounded_and_words_exactly():
    assert same_cell("12.1", "12.095") and same_cell("−0.44", "-0.441") and same_cell("79,104", "79104")
    assert not same_cell("12.2", "12.095") and not same_cell("holds", "does not hold")
    assert not same_cell("mora1 → lora", "mora1") and same_cell("**holds**", "holds")
    assert same_cell("1.84e+07", "1.837e+07") and not same_cell("1.9e+07", "1.837e+07")
