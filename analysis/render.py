"""A table of strings as Markdown or LaTeX (booktabs), without extra dependencies."""
from __future__ import annotations

import pandas as pd

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "±": r"$\pm$", "–": "--", "—": "---", "Δ": r"$\Delta$", "×": r"$\times$", "≥": r"$\geq$",
                 "≤": r"$\leq$", "σ": r"$\sigma$"}


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def escape_markdown(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def escape_latex(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text.replace("\n", " "))


def to_markdown(table: pd.DataFrame, caption: str = "") -> str:
    header = [escape_markdown(_text(c)) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(escape_markdown(_text(v)) for v in row) + " |")
    body = "\n".join(lines) + "\n"
    return f"{caption}\n\n{body}" if caption else body


def to_latex(table: pd.DataFrame, caption: str = "", label: str = "") -> str:
    spec = "l" * len(table.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + escape_latex(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule",
              " & ".join(escape_latex(_text(c)) for c in table.columns) + r" \\", r"\midrule"]
    for row in table.itertuples(index=False):
        lines.append(" & ".join(escape_latex(_text(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
