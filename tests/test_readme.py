"""The README's results tables quote the committed published results, number for number.

A results table in README.md is one whose preceding line says `Source: <file>[, <file>…]` with paths
under results/published/. Every number in such a table must be a number of its source files as
written there or rounded to the README's decimals (12.095 → 12.1; −0.44 from -0.441). Every section
that reports measured results has at least one such table, and no table there goes without a source.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS_SECTIONS = ("What the tiny profile does", "Replication:", "A real pretrained model")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def numbers(text: str) -> list[str]:
    """Numbers as written: unicode minus as '-', thousands separators dropped."""
    text = text.replace("−", "-").replace("\u2009", "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return NUMBER.findall(text)


def matches(quoted: str, source_values: list[float]) -> bool:
    value = float(quoted)
    decimals = len(quoted.split(".")[1].split("e")[0]) if "." in quoted and "e" not in quoted else 0
    if "e" in quoted:
        return any(abs(s - value) <= abs(value) * 5e-3 for s in source_values)
    half = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(s - value) <= half for s in source_values)


def sections(text: str) -> dict[str, list[str]]:
    out, current = {}, "top"
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("## "):
            current = line[3:].strip()
        out.setdefault(current, []).append("" if in_code else line)
    return out


def tables(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(the line before the table, the table's body rows) for each Markdown table."""
    found, i = [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-|: ]+\|$", lines[i + 1]):
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            found.append((before, lines[i + 2:j]))
            i = j
        else:
            i += 1
    return found


def sourced_tables():
    for title, lines in sections(README.read_text()).items():
        if title.startswith(RESULTS_SECTIONS):
            for before, rows in tables(lines):
                yield title, before, rows


def test_every_results_section_has_a_sourced_table_and_no_unsourced_one():
    titles = {title for title, _, _ in sourced_tables()}
    for wanted in RESULTS_SECTIONS:
        assert any(t.startswith(wanted) for t in titles), f"README section {wanted!r}: no results table"
    for title, before, _ in sourced_tables():
        assert before.startswith("Source: "), f"README {title!r}: a results table without a `Source:` line"


@pytest.mark.parametrize("title,before,rows", list(sourced_tables()),
                         ids=lambda v: v[:40] if isinstance(v, str) else "")
def test_readme_results_numbers_are_in_the_published_files(title, before, rows):
    paths = re.findall(r"`(results/published/[^`]+)`", before)
    assert paths, f"{title}: the Source line names no results/published/ file: {before}"
    source_text = ""
    for path in paths:
        assert (ROOT / path).is_file(), f"{title}: {path} is not committed"
        source_text += (ROOT / path).read_text()
    source_values = [float(n) for n in numbers(source_text)]
    missing = []
    for row in rows:
        for cell in row.strip("|").split("|")[1:]:        # the first column names the row
            missing += [n for n in numbers(cell) if not matches(n, source_values)]
    assert not missing, f"README {title!r}: numbers not in {paths}: {missing}"


def test_the_checker_catches_a_wrong_number():
    values = [float(n) for n in numbers("| lora | 12.095 | −0.441 | 79,104 | [+3.598, +20.592] |")]
    assert matches("12.1", values) and matches("-0.44", values) and matches("79104", values)
    assert matches("+3.6", values) and not matches("12.2", values) and not matches("3.5", values)
