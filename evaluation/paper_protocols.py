"""The papers' own evaluation protocols, as hooks for the lm-eval tasks in evaluation/tasks/paper/.

MetaMath (the math setting of MoRA and MiLoRA; meta-math/MetaMath@fe667b1, eval_gsm8k.py,
eval_math.py, util.py): zero-shot Alpaca prompt ending "### Response: Let's think step by step.",
greedy, the answer read after the last "The answer is: ".
- GSM8K: the first number there (signs, one of `.`/`,`/`/`), fractions evaluated, rounded to an
  integer with Python's round (half to even: 2.5 -> 2), compared as floats with the integer after
  "#### " of the reference.
- MATH: the text up to the first ".\\n", without a final period, against the last \\boxed{} of the
  reference solution after Hendrycks' string normalisation (\\frac, a/b, 0.5, units, degrees, \\%,
  \\left/\\right, "x = "); where the normalisation fails the raw strings are compared. A solution
  without a \\boxed{...} is never matched.
Every rule above is MetaMath's, kept as is (quirks included: "1,234,567" reads 1234; "0.5" reads
0 on GSM8K). A fraction "a/b" is read as their `fraction` package (PyPI fraction 2.2.0) computes it,
with float quotients inside (option `metamath_fractions: float`, the default): numerators of 16+
digits come out rounded ("12345678901234567/3" reads 4115226300411523, not ...522), and where the
package raises ("3/00": a zero denominator written with two digits; numbers beyond float range),
which stops their script, the item reads as no answer, i.e. wrong. `metamath_fractions: exact`
divides the integers exactly instead (same "3/00" -> no answer).

LLM-Adapters (MiLoRA's commonsense table; AGI-Edgerunners/LLM-Adapters@8166572,
commonsense_evaluate.py): their evaluation prompt verbatim (option `llmadapters_prompt: official`,
the default: the Alpaca text as their generate_prompt writes it, a space after "request.", 16
spaces before "### Instruction:", before the instruction and before "### Response:", and 16 spaces
after its newline; or `alpaca`, the clean Alpaca text of tasks.prompts) around each benchmark's
instruction as their dataset/<name>/test.json words it, beam search with 4 beams and up to 32 new
tokens as transformers' generate runs it (evaluation.run.CappedHFLM), then the first `true|false`,
`solution1|solution2`, `answer1..5`, `ending1..4` or `option1|option2` (case-sensitive) in the text
before any repeated "### Response:", against the gold label word.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace

from tasks.prompts import alpaca

@dataclass(frozen=True)
class ProtocolOptions:
    """How the paper tasks read their documents and generations; the defaults are the official code's.

    - llmadapters_prompt: "official" (LLM-Adapters' evaluation template verbatim) or "alpaca" (the
      clean Alpaca text the suite trains with).
    - metamath_fractions: "float" (MetaMath's `fraction` package arithmetic) or "exact".
    """

    llmadapters_prompt: str = "official"
    metamath_fractions: str = "float"

    def __post_init__(self):
        for name, allowed in (("llmadapters_prompt", ("official", "alpaca")),
                              ("metamath_fractions", ("float", "exact"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"paper_protocol.{name}: {getattr(self, name)!r} is not one of {allowed}")


OPTIONS = ProtocolOptions()
OPTION_NAMES = tuple(f.name for f in fields(ProtocolOptions))


@contextlib.contextmanager
def protocol_options(**options) -> Iterator[ProtocolOptions]:
    """Run the paper tasks with `options` (ProtocolOptions fields) in force; the old ones after."""
    global OPTIONS
    previous = OPTIONS
    OPTIONS = replace(previous, **options)
    try:
        yield OPTIONS
    finally:
        OPTIONS = previous


METAMATH_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response: Let's think step by step."
)
ANSWER_MARK = "The answer is: "


def metamath_gsm8k_text(doc: dict) -> str:
    return METAMATH_PROMPT.format(instruction=doc["question"])


def metamath_math_text(doc: dict) -> str:
    return METAMATH_PROMPT.format(instruction=doc["problem"])


# ---------------------------------------------------------------- GSM8K


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _reduced(numerator: int, denominator: int) -> tuple[int, int]:
    """A fraction in lowest terms as the `fraction` package forms it: exact gcd, float quotients."""
    if denominator == 0:
        raise ZeroDivisionError("zero denominator")
    divisor = math.gcd(numerator, denominator)
    return int(numerator / divisor), int(denominator / divisor)


def _package_number(text: str) -> tuple[int, int]:
    """A number as a fraction the way the package reads one: through float, scaled by 10 to the
    number of characters after the "." of its repr (exponent included: 1.2e+16 -> 10**6)."""
    value = float(text)
    shown = str(value)
    places = len(shown) - shown.find(".") - 1
    return _reduced(int(round(value * 10**places)), 10**places)


def float_fraction(numerator: str, denominator: str) -> int:
    """round(a/b) as MetaMath computes it with the `fraction` package (2.2.0); raises where it does
    (zero denominator, a number beyond float range)."""
    top_n, top_d = _package_number(numerator)
    bottom_n, bottom_d = _package_number(denominator)
    if bottom_n == 0:
        raise ZeroDivisionError("zero denominator")
    # a/b is a times 1/b, and the string is then divided by 1: two more reductions.
    n, d = _reduced(*_reduced(top_n * bottom_d, top_d * bottom_n))
    return round(float(n / d))


def gsm8k_answer(completion: str) -> int | None:
    """The integer MetaMath reads from a generation, or None (no "The answer is: ", no number; a
    fraction their script cannot evaluate)."""
    if ANSWER_MARK not in completion:
        return None
    match = re.search(r"[\-+]?\d*[\.,/]?\d+", completion.split(ANSWER_MARK)[-1].strip())
    if match is None:
        return None
    number = match.group()
    if "/" in number:
        numerator, denominator = number.split("/")
        if not (_is_number(numerator) and _is_number(denominator)):
            return None
        if denominator == "0":
            return round(float(numerator))
        if OPTIONS.metamath_fractions == "exact":
            return None if int(denominator) == 0 else round(int(numerator) / int(denominator))
        try:
            return float_fraction(numerator, denominator)
        except (ZeroDivisionError, OverflowError, ValueError):  # their script stops here
            return None
    value = float(number.replace(",", ""))
    return None if value == float("inf") else round(value)


def gsm8k_gold(doc: dict) -> int:
    return int(doc["answer"].split("#### ")[1].replace(",", ""))


def metamath_gsm8k_target(doc: dict) -> str:
    return str(gsm8k_gold(doc))


def metamath_gsm8k_results(doc: dict, results: list[str]) -> dict:
    predicted = gsm8k_answer(results[0])
    return {"exact_match": float(predicted is not None and float(predicted) == float(gsm8k_gold(doc)))}


# ---------------------------------------------------------------- MATH


def last_boxed_only_string(text: str) -> str | None:
    """The last `\\boxed{...}` (or `\\fbox{...}`) with its braces balanced, or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def remove_boxed(boxed: str | None) -> str | None:
    left = "\\boxed{"
    if boxed is None or not boxed.startswith(left) or not boxed.endswith("}"):
        return None
    return boxed[len(left) : -1]


def math_gold(solution: str) -> str | None:
    return remove_boxed(last_boxed_only_string(solution))


def math_answer(completion: str) -> str | None:
    """The text MetaMath reads after the last "The answer is: ", or None without one."""
    if ANSWER_MARK not in completion:
        return None
    answer = completion.split(ANSWER_MARK)[-1].split(".\n")[0].strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip()


# Hendrycks' normalisation as MetaMath's util.py runs it. IndexError/ValueError/AssertionError
# escape on purpose: is_equiv then compares the raw strings, as theirs does.
def _fix_fracs(text: str) -> str:
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if part[0] == "{":
            out += part
        elif len(part) < 2:
            return text
        elif part[1] != "{":
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "{" + part[0] + "}" + part[1:]
    return out


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    a, b = int(parts[0]), int(parts[1])
    return f"\\frac{{{a}}}{{{b}}}" if text == f"{a}/{b}" else text


def _remove_right_units(text: str) -> str:
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    assert len(parts) == 2
    return parts[0]


def _fix_sqrt(text: str) -> str:
    head, *parts = text.split("\\sqrt")
    return head + "".join("\\sqrt" + (p if p[0] == "{" else "{" + p[0] + "}" + p[1:]) for p in parts)


def strip_string(text: str) -> str:
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"),
                     ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")):
        text = text.replace(old, new)
    text = _remove_right_units(text)
    text = text.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    if len(text.split("=")) == 2 and len(text.split("=")[0]) <= 2:
        text = text.split("=")[1]
    text = _fix_sqrt(text).replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_a_slash_b(text)


def is_equiv(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return strip_string(a) == strip_string(b)
    except Exception:
        return a == b


def metamath_math_target(doc: dict) -> str:
    return math_gold(doc["solution"]) or ""


def metamath_math_results(doc: dict, results: list[str]) -> dict:
    answer = math_answer(results[0])
    return {"exact_match": float(answer is not None and is_equiv(answer, math_gold(doc["solution"])))}


# ---------------------------------------------------------------- LLM-Adapters commonsense


def _numbered(word: str, options: list[str]) -> str:
    return " ".join(f"{word}{i}: {option}" for i, option in enumerate(options, 1))


def _answer_format(word: str, n: int) -> str:
    return "/".join(f"{word}{i}" for i in range(1, n + 1))


def _choice_question(question: str, options: list[str]) -> str:
    return (f"Please choose the correct answer to the question: {question}\n\n"
            f"{_numbered('Answer', options)}\n\nAnswer format: {_answer_format('answer', len(options))}")


# name -> (instruction, gold answer word, answer pattern), each on the Hub schema of the dataset
# lm-eval's built-in task of that name reads.
COMMONSENSE: dict[str, tuple[Callable[[dict], str], Callable[[dict], str], str]] = {
    "boolq": (  # aps/super_glue boolq
        lambda d: ("Please answer the following question with true or false, question: "
                   f"{d['question']}?\n\nAnswer format: true/false"),
        lambda d: "true" if d["label"] == 1 else "false",
        r"true|false",
    ),
    "piqa": (  # baber/piqa
        lambda d: (f"Please choose the correct solution to the question: {d['goal']}\n\n"
                   f"Solution1: {d['sol1']}\n\nSolution2: {d['sol2']}\n\nAnswer format: solution1/solution2"),
        lambda d: f"solution{int(d['label']) + 1}",
        r"solution1|solution2",
    ),
    "siqa": (  # lighteval/siqa (label "1".."3")
        lambda d: _choice_question(f"{d['context']} {d['question']}", [d["answerA"], d["answerB"], d["answerC"]]),
        lambda d: f"answer{int(d['label'])}",
        r"answer1|answer2|answer3|answer4|answer5",
    ),
    "hellaswag": (  # Rowan/hellaswag (raw ctx, label "0".."3")
        lambda d: (f"Please choose the correct ending to complete the given sentence: {d['activity_label']}: "
                   f"{d['ctx']}\n\n{_numbered('Ending', d['endings'])}\n\n"
                   f"Answer format: {_answer_format('ending', len(d['endings']))}"),
        lambda d: f"ending{int(d['label']) + 1}",
        r"ending1|ending2|ending3|ending4",
    ),
    "winogrande": (  # allenai/winogrande winogrande_xl (answer "1"/"2")
        lambda d: ("Please choose the correct answer to fill in the blank to complete the given sentence: "
                   f"{d['sentence']}\n\nOption1: {d['option1']} Option2: {d['option2']} "
                   "Answer format: option1/option2"),
        lambda d: f"option{d['answer']}",
        r"option1|option2",
    ),
    "arc": (  # allenai/ai2_arc ARC-Easy / ARC-Challenge (3 to 5 choices)
        lambda d: _choice_question(d["question"], d["choices"]["text"]),
        lambda d: f"answer{d['choices']['label'].index(d['answerKey']) + 1}",
        r"answer1|answer2|answer3|answer4|answer5",
    ),
    "openbookqa": (  # allenai/openbookqa main
        lambda d: _choice_question(d["question_stem"], d["choices"]["text"]),
        lambda d: f"answer{d['choices']['label'].index(d['answerKey'].lstrip()) + 1}",
        r"answer1|answer2|answer3|answer4|answer5",
    ),
}


def commonsense_answer(name: str, generation: str) -> str:
    """LLM-Adapters' extract_answer on the text before any repeated "### Response:" ("" if none)."""
    found = re.findall(COMMONSENSE[name][2], generation.split("### Response:")[0].strip())
    return found[0] if found else ""


# commonsense_evaluate.py's generate_prompt (no input), character for character.
LLMADAPTERS_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request. \n\n" + " " * 16 + "### Instruction:\n" + " " * 16 + "{instruction}\n\n"
    + " " * 16 + "### Response:\n" + " " * 16)


def llmadapters_prompt(instruction: str) -> str:
    """The prompt around a commonsense instruction, as OPTIONS.llmadapters_prompt asks."""
    if OPTIONS.llmadapters_prompt == "alpaca":
        return alpaca(instruction)
    return LLMADAPTERS_PROMPT.format(instruction=instruction)


def _commonsense_hooks(name: str):
    instruction, gold, _ = COMMONSENSE[name]

    def doc_to_text(doc: dict) -> str:
        return llmadapters_prompt(instruction(doc))

    def doc_to_target(doc: dict) -> str:
        return gold(doc)

    def process_results(doc: dict, results: list[str]) -> dict:
        return {"acc": float(commonsense_answer(name, results[0]) == gold(doc))}

    return doc_to_text, doc_to_target, process_results


llmadapters_boolq_text, llmadapters_boolq_target, llmadapters_boolq_results = _commonsense_hooks("boolq")
llmadapters_piqa_text, llmadapters_piqa_target, llmadapters_piqa_results = _commonsense_hooks("piqa")
llmadapters_siqa_text, llmadapters_siqa_target, llmadapters_siqa_results = _commonsense_hooks("siqa")
(llmadapters_hellaswag_text, llmadapters_hellaswag_target,
 llmadapters_hellaswag_results) = _commonsense_hooks("hellaswag")
(llmadapters_winogrande_text, llmadapters_winogrande_target,
 llmadapters_winogrande_results) = _commonsense_hooks("winogrande")
llmadapters_arc_text, llmadapters_arc_target, llmadapters_arc_results = _commonsense_hooks("arc")
(llmadapters_openbookqa_text, llmadapters_openbookqa_target,
 llmadapters_openbookqa_results) = _commonsense_hooks("openbookqa")
