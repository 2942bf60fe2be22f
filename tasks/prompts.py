"""Prompt templates: the papers' for paper sources, short ones of the same shape for tiny sources."""
from __future__ import annotations

# Stanford Alpaca's templates, as used for commonsense_170k (LLM-Adapters, MiLoRA), MetaMathQA and
# Alpaca-cleaned (VeRA). LLM-Adapters' finetune.py wraps the same text in an indented triple-quoted
# string; we use the clean Alpaca text the papers describe.
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "### Input:\n{input}\n\n### Response:\n")


def alpaca(instruction: str, input: str = "") -> str:
    if input:
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)


# Tulu v2's chat format (open-instruct): "<|role|>\n" + content + "\n" per message; the model
# continues after "<|assistant|>\n".
def tulu_history(messages: list[dict]) -> str:
    return "".join(f"<|{m['role']}|>\n{m['content'].strip()}\n" for m in messages) + "<|assistant|>\n"


# Tiny instruction following: the Alpaca section headers without the preamble (short sequences).
TINY_INSTRUCTION = "### Instruction:\n{instruction}\n\n### Response:\n"

# Question answering in lm-eval's style (gsm8k, arc, pubmedqa): choices/answers follow "Answer:"
# with a leading space.
QUESTION = "Question: {question}\nAnswer:"

# PubMedQA as lm-eval's pubmedqa task asks it (choices " yes" / " no" / " maybe").
PUBMEDQA = "Abstract: {abstract}\nQuestion: {question}\nAnswer:"

# E2E: LoRA's GPT-2 data (reused by VeRA) separates MR and reference with "||"; a newline plays that
# part here, so that `target` is exactly one of the references (no leading separator space).
E2E = "{mr}\n"
