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
0 on GSM8K). One divergence: a fraction with a zero denominator written "3/00" raises in their
script and reads as no answer here.

LLM-Adapters (MiLoRA's commonsense table; AGI-Edgerunners/LLM-Adapters@8166572,
commonsense_evaluate.py): the Alpaca prompt around each benchmark's instruction as their
dataset/<name>/test.json words it, up to 32 new tokens, then the first `true|false`,
`solution1|solution2`, `answer1..5`, `ending1..4` or `option1|option2` (case-sensitive) in the text
before any repeated "### Response:", against the gold label word. Their script indents the
template inside a triple-quoted string (16 spaces per line, also when training); the suite trains
and evaluates with the clean Alpaca text of tasks.prompts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tasks.prompts import alpaca

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


def gsm8k_answer(completion: str) -> int | None:
    """The integer MetaMath reads from a generation, or None (no "The answer is: ", no number)."""
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
        if int(denominator) == 0:  # "3/00": MetaMath's Fraction raises here
            return None
        return round(int(numerator) / int(denominator))
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


def _commonsense_hooks(name: str):
    instruction, gold, _ = COMMONSENSE[name]

    def doc_to_text(doc: dict) -> str:
        return alpaca(instruction(doc))

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
