"""The instruction task's checks: lm-eval's IFEval instruction checkers, scored as IFEval scores them.

A record's `check` holds IFEval's two fields,
  {"instruction_id_list": ["keywords:existence", "startend:end_checker"],
   "kwargs": [{"keywords": ["cat"]}, {"end_phrase": "!"}]},
with ids from lm_eval/tasks/ifeval/instructions_registry.py and, per id, the arguments of that
checker's `build_description`. Each response is scored strict (the response as it is) and loose
(IFEval's upper bound: also without its first and/or last line and without `*`), at the prompt level
(all instructions followed) and the instruction level (each instruction counts once). The suite
reports these as instruction-following pass rates; the task is not IFEval's prompt set.

lm-eval's ifeval modules (langdetect, immutabledict, nltk) load on first use, not at import.
"""

from __future__ import annotations

from functools import cache

from tasks.instruct import LANGDETECT_SEED

METRICS = ("prompt_pass_rate", "inst_pass_rate", "prompt_pass_rate_loose", "inst_pass_rate_loose")


@cache
def _ifeval():
    """lm-eval's IFEval scoring module, with langdetect seeded so a response always gets one verdict
    (unseeded, langdetect may answer differently for the same short text)."""
    import langdetect
    from lm_eval.tasks.ifeval import utils

    langdetect.DetectorFactory.seed = LANGDETECT_SEED
    return utils


def validate_check(check: object) -> None:
    """Raise ValueError for a check lm-eval's IFEval checkers cannot run as given."""
    registry = _ifeval().instructions_registry.INSTRUCTION_DICT
    if not isinstance(check, dict) or not isinstance(check.get("instruction_id_list"), list) \
            or not isinstance(check.get("kwargs"), list):
        raise ValueError(f"check must be a dict with 'instruction_id_list' and 'kwargs' lists, got {check!r}")
    ids, kwargs = check["instruction_id_list"], check["kwargs"]
    if not ids or len(kwargs) != len(ids):
        raise ValueError(f"check needs one kwargs dict per instruction id, got {len(ids)} ids and {len(kwargs)} kwargs")
    for instruction_id, args in zip(ids, kwargs):
        if instruction_id not in registry:
            raise ValueError(f"unknown instruction id {instruction_id!r}; lm-eval's IFEval has {sorted(registry)}")
        checker = registry[instruction_id](instruction_id)
        needed = checker.get_instruction_args_keys()
        # build_description draws a missing (or falsy, which IFEval drops) argument at random.
        if not isinstance(args, dict) or not all(args.get(key) for key in needed):
            raise ValueError(f"instruction {instruction_id!r} needs kwargs {needed}, got {args!r}")
        try:
            checker.build_description(**args)
        except (TypeError, ValueError) as err:
            raise ValueError(f"instruction {instruction_id!r}: bad kwargs {args!r} ({err})") from None


def _example(check: dict, prompt: str):
    return _ifeval().InputExample(key=0, instruction_id_list=check["instruction_id_list"], prompt=prompt,
                                  kwargs=check["kwargs"])


def scores(response: str, check: dict, prompt: str = "") -> dict:
    """IFEval's four judgements of `response`: prompt-level booleans, instruction-level lists."""
    strict = _ifeval().test_instruction_following_strict(_example(check, prompt), response)
    loose = _ifeval().test_instruction_following_loose(_example(check, prompt), response)
    return {"prompt_pass_rate": strict.follow_all_instructions, "inst_pass_rate": strict.follow_instruction_list,
            "prompt_pass_rate_loose": loose.follow_all_instructions,
            "inst_pass_rate_loose": loose.follow_instruction_list}


def follows(response: str, check: dict, prompt: str = "") -> bool:
    """Strict, prompt level: does `response` follow every instruction of `check`?"""
    return _ifeval().test_instruction_following_strict(_example(check, prompt), response).follow_all_instructions
