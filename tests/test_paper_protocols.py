"""The papers' evaluation protocols: evaluation/paper_protocols.py and evaluation/tasks/paper/.

Extraction and equivalence are checked against the official code's own outputs on crafted
generations (the expected columns below were produced by running the official functions, outside
this project); the tasks are loaded by lm-eval from small local files in the Hub datasets' schemas.
"""

import json
import random
from pathlib import Path

import lm_eval.tasks
import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.tasks import TaskManager
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from evaluation import paper_protocols as pp
from evaluation.run import CappedHFLM
from evaluation.suite_tasks import TASKS_DIR

# ---------------------------------------------------------------- (a) MetaMath parity
# meta-math/MetaMath@fe667b14f9a4c51bde9809adafb82b6b5d255800: eval_gsm8k.py extract_answer_number
# (with PyPI `fraction` 2.2.0, as their requirements ask) and the float compare of gsm8k_test;
# eval_math.py remove_boxed(util.last_boxed_only_string(solution)) and process_results.
# (completion, reference answer, their extracted number, their verdict)
GSM8K_CASES = [
    ("She makes 9 * 2 = 18 dollars.\nThe answer is: 18", "#### 18", 18, True),
    ("The answer is: 18 dollars every day.\n\nQuestion 2 asks for 5", "#### 18", 18, True),
    ("The answer is: 18.00", "#### 18", 18, True),
    ("The answer is: 1,234", "#### 1234", 1234, True),
    ("The answer is: 1,234,567", "#### 1234567", 1234, False),
    ("The answer is: -5", "#### -5", -5, True),
    ("The answer is: +7", "#### 7", 7, True),
    ("The answer is: 1/2", "#### 0", 0, True),
    ("The answer is: 7/2", "#### 4", 4, True),
    ("The answer is: 5/2", "#### 3", 2, False),
    ("The answer is: 10/4", "#### 2", 2, True),
    ("The answer is: \\frac{1}{2}", "#### 1", 1, True),
    ("The answer is: 0.5", "#### 1", 0, False),
    ("The answer is: 3.5", "#### 4", 4, True),
    ("The answer is: 2.5", "#### 2", 2, True),
    ("The answer is: -0.4", "#### 0", 0, True),
    ("The answer is: $18", "#### 18", 18, True),
    ("The answer is: 18%", "#### 18", 18, True),
    ("The answer is: 1e5", "#### 100000", 1, False),
    ("The answer is:  18", "#### 18", 18, True),
    ("The answer is 18", "#### 18", None, False),
    ("18 is the number of eggs", "#### 18", None, False),
    ("The answer is: 12\nThe answer is: 18", "#### 18", 18, True),
    ("The answer is: 5/0", "#### 5", 5, True),
    ("The answer is: /4", "#### 4", None, False),
    ("The answer is: ,5", "#### 5", 5, True),
    ("The answer is: .", "#### 0", None, False),
    ("The answer is: twelve", "#### 12", None, False),
    ("The answer is: 1" + "0" * 400, "#### 1", None, False),
    ("The answer is: 1,000", "#### 1,000", 1000, True),
]

# (completion, reference solution, their gold answer, their verdict)
MATH_CASES = [
    ("So x = 1/2.\nThe answer is: \\frac{1}{2}", "Thus $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", True),
    ("The answer is: 1/2", "$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", True),
    ("The answer is: 0.5", "$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", True),
    ("The answer is: \\frac12", "$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", True),
    ("The answer is: \\dfrac{1}{2}.", "$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", True),
    ("The answer is: \\tfrac{3}{4}", "$\\boxed{\\frac34}$", "\\frac34", True),
    ("The answer is: 18.\nSo we are done.", "The total is $\\boxed{18}$.", "18", True),
    ("The answer is: 18.00", "$\\boxed{18}$", "18", False),
    ("The answer is: 1234", "$\\boxed{1,\\!234}$", "1,\\!234", False),
    ("The answer is: 1,234", "$\\boxed{1,\\!234}$", "1,\\!234", True),
    ("The answer is: 5 \\text{ cm}", "$\\boxed{5}$", "5", True),
    ("The answer is: 90^\\circ", "$\\boxed{90}$", "90", True),
    ("The answer is: \\$18", "$\\boxed{18}$", "18", True),
    ("The answer is: $18", "$\\boxed{18}$", "18", False),
    ("The answer is: x = 5", "$\\boxed{5}$", "5", True),
    ("The answer is: 10", "$\\boxed{k=10}$", "k=10", True),
    ("The answer is: \\sqrt2", "$\\boxed{\\sqrt{2}}$", "\\sqrt{2}", True),
    ("The answer is: 50\\%", "$\\boxed{50}$", "50", True),
    ("The answer is: .5", "$\\boxed{0.5}$", "0.5", True),
    ("The answer is: \\left( 1, 2 \\right)", "$\\boxed{(1,2)}$", "(1,2)", True),
    ("The answer is: x/2", "$\\boxed{\\frac{x}{2}}$", "\\frac{x}{2}", False),
    ("The answer is: \\sqrt", "$\\boxed{\\sqrt}$", "\\sqrt", True),
    ("The answer is: 3 \\text{ m} \\text{ s}", "$\\boxed{3}$", "3", False),
    ("The answer is: \\boxed{12}", "$\\boxed{12}$", "12", False),
    ("First $\\boxed{3}$ then 5.\nThe answer is: 5", "We get \\boxed{3}, then finally $\\boxed{5}$.", "5", True),
    ("The answer is: \\frac{\\sqrt{3}}{2}", "$\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}", True),
    ("The answer is: 2.", "$\\boxed{2}$", "2", True),
    ("The answer is: 4\n", "$\\boxed{4}$", "4", True),
    ("The answer is 5", "$\\boxed{5}$", "5", False),
    ("The answer is: 5", "$\\fbox{5}$", None, False),
    ("The answer is: 5", "no box at all: 5", None, False),
    ("The answer is: -3", "$\\boxed{-3}$", "-3", True),
    ("The answer is: \\frac{-1}{3}", "$\\boxed{-\\frac{1}{3}}$", "-\\frac{1}{3}", False),
]


@pytest.mark.parametrize("completion, reference, number, correct", GSM8K_CASES)
def test_gsm8k_extraction_matches_metamath(completion, reference, number, correct):
    assert pp.gsm8k_answer(completion) == number
    doc = {"question": "q", "answer": f"Some reasoning.\n{reference}"}
    assert pp.metamath_gsm8k_results(doc, [completion]) == {"exact_match": float(correct)}


def test_gsm8k_zero_denominator_reads_as_no_answer():
    # MetaMath's script raises on "3/00" (Fraction with a zero denominator); here it is no answer,
    # under both fraction options (tests/test_official_eval.py has more of their fraction outputs).
    assert pp.gsm8k_answer("The answer is: 3/00") is None
    with pp.protocol_options(metamath_fractions="exact"):
        assert pp.gsm8k_answer("The answer is: 3/00") is None


@pytest.mark.parametrize("completion, solution, gold, correct", MATH_CASES)
def test_math_equivalence_matches_metamath(completion, solution, gold, correct):
    assert pp.math_gold(solution) == gold
    doc = {"problem": "p", "level": "Level 1", "type": "Algebra", "solution": solution}
    assert pp.metamath_math_results(doc, [completion]) == {"exact_match": float(correct)}


# ---------------------------------------------------------------- (b) LLM-Adapters parity
# AGI-Edgerunners/LLM-Adapters@816657208af4db747803f87ba40a4c71383fed7a commonsense_evaluate.py:
# extract_answer(args, batch_decode(prompt + generation).split("### Response:")[1].strip()).
# (their dataset name, generation, their prediction)
COMMONSENSE_CASES = [
    ("boolq", " the correct answer is true", "true"),
    ("boolq", "the correct answer is True", ""),
    ("boolq", "false, though some say true", "false"),
    ("boolq", "it is untrue", "true"),
    ("boolq", "", ""),
    ("piqa", "the correct answer is solution2", "solution2"),
    ("piqa", "Solution1", ""),
    ("piqa", "solution1 or solution2", "solution1"),
    ("social_i_qa", "the correct answer is answer3", "answer3"),
    ("social_i_qa", "Answer2", ""),
    ("social_i_qa", "answer5 answer1", "answer5"),
    ("ARC-Challenge", "the correct answer is answer4", "answer4"),
    ("ARC-Easy", "the correct answer is answer1\n\n### Instruction:\nanswer2", "answer1"),
    ("openbookqa", "the correct answer is answer2", "answer2"),
    ("openbookqa", "the correct answer is\n\n### Response:\nanswer2", ""),
    ("hellaswag", "the correct answer is ending4", "ending4"),
    ("hellaswag", "ending 2", ""),
    ("winogrande", "the correct answer is option2", "option2"),
    ("winogrande", "option3 option1", "option1"),
    ("winogrande", "the correct answer is Option1", ""),
]
OURS = {"social_i_qa": "siqa", "ARC-Challenge": "arc", "ARC-Easy": "arc"}


@pytest.mark.parametrize("dataset, generation, prediction", COMMONSENSE_CASES)
def test_commonsense_extraction_matches_llm_adapters(dataset, generation, prediction):
    assert pp.commonsense_answer(OURS.get(dataset, dataset), generation) == prediction


# ---------------------------------------------------------------- local Hub-schema data
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{}\n\n### Response:\n")
# LLM-Adapters' commonsense_evaluate.py generate_prompt (the llmadapters tasks' default; ALPACA is the option).
LLMADAPTERS = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
               "request. \n\n                ### Instruction:\n                {}\n\n                ### Response:\n"
               "                ")
METAMATH = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\n{}\n\n### Response: Let's think step by step.")

GSM8K_ROWS = [
    {"question": "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
                 "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
                 "per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day "
               "at the farmer’s market.\n#### 18"},
    {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does "
                 "it take?",
     "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts "
               "of fabric\n#### 3"},
]
MATH_SUBJECTS = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus"]


def math_rows(subject, n):
    return [{"problem": f"{subject} problem {i}: what is ${i} + {i}$?", "level": "Level 1", "type": subject,
             "solution": f"Adding, ${i} + {i} = \\boxed{{{2 * i}}}$."} for i in range(n)]


# The first item of each LLM-Adapters dataset/<name>/test.json, here in the Hub schema of the
# dataset lm-eval reads, with their instruction verbatim; hellaswag (not in their repo snapshot) is
# an item from an evaluation log of their script. A second item gives limit=2 something to do.
COMMONSENSE = {
    "boolq": ([{"question": "does ethanol take more energy make that produces", "passage": "Ethanol fuel ...",
                "idx": 0, "label": 0},
               {"question": "is house tax and property tax are same", "passage": "Property tax ...", "idx": 1,
                "label": 1}],
              "Please answer the following question with true or false, question: does ethanol take more energy "
              "make that produces?\n\nAnswer format: true/false", "false"),
    "piqa": ([{"goal": "How do I ready a guinea pig cage for it's new occupants?",
               "sol1": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper "
                       "strips, you will also need to supply it with a water bottle and a food dish.",
               "sol2": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans "
                       "material, you will also need to supply it with a water bottle and a food dish.",
               "label": 0},
              {"goal": "dresser", "sol1": "replace drawer with bobby pin ",
               "sol2": "finish, woodgrain with  bobby pin ", "label": 1}],
             "Please choose the correct solution to the question: How do I ready a guinea pig cage for it's new "
             "occupants?\n\nSolution1: Provide the guinea pig with a cage full of a few inches of bedding made of "
             "ripped paper strips, you will also need to supply it with a water bottle and a food dish.\n\n"
             "Solution2: Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans "
             "material, you will also need to supply it with a water bottle and a food dish.\n\nAnswer format: "
             "solution1/solution2", "solution1"),
    "siqa": ([{"context": "Tracy didn't go home that evening and resisted Riley's attacks.",
               "question": "What does Tracy need to do before this?", "answerA": "make a new plan",
               "answerB": "Go home and see Riley", "answerC": "Find somewhere to go", "label": "3"},
              {"context": "Sydney walked past a homeless woman asking for change but did not have any money they "
                          "could give to her. Sydney felt bad afterwards.",
               "question": "How would you describe Sydney?", "answerA": "sympathetic",
               "answerB": "like a person who was unable to help", "answerC": "incredulous", "label": "1"}],
             "Please choose the correct answer to the question: Tracy didn't go home that evening and resisted "
             "Riley's attacks. What does Tracy need to do before this?\n\nAnswer1: make a new plan Answer2: Go "
             "home and see Riley Answer3: Find somewhere to go\n\nAnswer format: answer1/answer2/answer3",
             "answer3"),
    "hellaswag": ([{"ind": 4, "activity_label": "Travel",
                    "ctx_a": "[header] How to become an au pair in spain [title] Consult online databases that list "
                             "opportunities for working as an au pair in spain. [step] Alternatively, contract the "
                             "services of a firm which will charge a fee in return for finding a position and "
                             "providing logistical support throughout your stay. [title] Ensure that your language "
                             "skills are adequate for your potential employers' needs.",
                    "ctx_b": "",
                    "ctx": "[header] How to become an au pair in spain [title] Consult online databases that list "
                           "opportunities for working as an au pair in spain. [step] Alternatively, contract the "
                           "services of a firm which will charge a fee in return for finding a position and "
                           "providing logistical support throughout your stay. [title] Ensure that your language "
                           "skills are adequate for your potential employers' needs.",
                    "endings": ["[step] Not ensuring fluent skills can be difficult, and employers may see you as "
                                "weak in language such as spanish or french as a vulnerable you. A respectful, "
                                "educated, articulate language can also be valuable.",
                                "[step] Correspond with all potential employers before leaving for spain. [title] "
                                "Agree to terms with your employer before accepting a position.",
                                "[step] Speak english, french and spanish as many times as you can. A few words may "
                                "not be enough if you are already an au pair but your english skills are desirable.",
                                "[step] You can find a formal language program in madrid or milan in the region to "
                                "apply for a job in this area. Also check to ensure that you both can speak english "
                                "and french."],
                    "source_id": "wikihow~1", "split": "val", "split_type": "indomain", "label": "1"},
                   {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
                    "ctx_b": "he", "ctx": "A man is sitting on a roof. he",
                    "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                                "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
                    "source_id": "activitynet~v_-JhWjGDPHMY", "split": "val", "split_type": "indomain",
                    "label": "3"}],
                  "Please choose the correct ending to complete the given sentence: Travel: [header] How to become "
                  "an au pair in spain [title] Consult online databases that list opportunities for working as an au "
                  "pair in spain. [step] Alternatively, contract the services of a firm which will charge a fee in "
                  "return for finding a position and providing logistical support throughout your stay. [title] "
                  "Ensure that your language skills are adequate for your potential employers' needs.\n\nEnding1: "
                  "[step] Not ensuring fluent skills can be difficult, and employers may see you as weak in language "
                  "such as spanish or french as a vulnerable you. A respectful, educated, articulate language can "
                  "also be valuable. Ending2: [step] Correspond with all potential employers before leaving for "
                  "spain. [title] Agree to terms with your employer before accepting a position. Ending3: [step] "
                  "Speak english, french and spanish as many times as you can. A few words may not be enough if you "
                  "are already an au pair but your english skills are desirable. Ending4: [step] You can find a "
                  "formal language program in madrid or milan in the region to apply for a job in this area. Also "
                  "check to ensure that you both can speak english and french.\n\nAnswer format: "
                  "ending1/ending2/ending3/ending4", "ending2"),
    "winogrande": ([{"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                     "option1": "Sarah", "option2": "Maria", "answer": "2"},
                    {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
                     "option1": "Sarah", "option2": "Maria", "answer": "1"}],
                   "Please choose the correct answer to fill in the blank to complete the given sentence: Sarah was a "
                   "much better surgeon than Maria so _ always got the easier cases.\n\nOption1: Sarah Option2: Maria "
                   "Answer format: option1/option2", "option2"),
    "arc_easy": ([{"id": "Mercury_417466", "question": "Which statement best explains why photosynthesis is the "
                                                       "foundation of most food webs?",
                   "choices": {"text": ["Sunlight is the source of energy for nearly all ecosystems.",
                                        "Most ecosystems are found on land instead of in water.",
                                        "Carbon dioxide is more available than other gases.",
                                        "The producers in all ecosystems are plants."], "label": ["A", "B", "C", "D"]},
                   "answerKey": "A"},
                  {"id": "x", "question": "What gas in the air do we need to breathe in order to live?",
                   "choices": {"text": ["nitrogen", "oxygen", "carbon dioxide", "hydrogen", "water vapor"],
                               "label": ["A", "B", "C", "D", "E"]}, "answerKey": "B"}],
                 "Please choose the correct answer to the question: Which statement best explains why photosynthesis "
                 "is the foundation of most food webs?\n\nAnswer1: Sunlight is the source of energy for nearly all "
                 "ecosystems. Answer2: Most ecosystems are found on land instead of in water. Answer3: Carbon dioxide "
                 "is more available than other gases. Answer4: The producers in all ecosystems are plants.\n\nAnswer "
                 "format: answer1/answer2/answer3/answer4", "answer1"),
    "arc_challenge": ([{"id": "Mercury_7175875", "question": "An astronomer observes that a planet rotates faster "
                                                             "after a meteorite impact. Which is the most likely "
                                                             "effect of this increase in rotation?",
                        "choices": {"text": ["Planetary density will decrease.", "Planetary years will become longer.",
                                             "Planetary days will become shorter.",
                                             "Planetary gravity will become stronger."],
                                    "label": ["A", "B", "C", "D"]}, "answerKey": "C"},
                       {"id": "y", "question": "Which is a mineral?",
                        "choices": {"text": ["wood", "quartz", "glass", "plastic"], "label": ["1", "2", "3", "4"]},
                        "answerKey": "2"}],
                      "Please choose the correct answer to the question: An astronomer observes that a planet rotates "
                      "faster after a meteorite impact. Which is the most likely effect of this increase in rotation?"
                      "\n\nAnswer1: Planetary density will decrease. Answer2: Planetary years will become longer. "
                      "Answer3: Planetary days will become shorter. Answer4: Planetary gravity will become stronger."
                      "\n\nAnswer format: answer1/answer2/answer3/answer4", "answer3"),
    "openbookqa": ([{"id": "8-376", "question_stem": "A person wants to start saving money so that they can afford "
                                                     "a nice vacation at the end of the year. After looking over "
                                                     "their budget and expenses, they decide the best way to save "
                                                     "money is to",
                     "choices": {"text": ["make more phone calls", "quit eating lunch out",
                                          "buy less with monopoly money", "have lunch with friends"],
                                 "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
                    {"id": "8-377", "question_stem": "There is most likely going to be fog around:",
                     "choices": {"text": ["a marsh", "a tundra", "the plains", "a desert"],
                                 "label": ["A", "B", "C", "D"]}, "answerKey": "A"}],
                   "Please choose the correct answer to the question: A person wants to start saving money so that "
                   "they can afford a nice vacation at the end of the year. After looking over their budget and "
                   "expenses, they decide the best way to save money is to\n\nAnswer1: make more phone calls Answer2: "
                   "quit eating lunch out Answer3: buy less with monopoly money Answer4: have lunch with friends\n\n"
                   "Answer format: answer1/answer2/answer3/answer4", "answer2"),
}
SPLIT = {name: "test" if name.startswith(("arc", "openbook")) else "validation" for name in COMMONSENSE}
COMMONSENSE_GROUP = [f"llmadapters_{name}" for name in COMMONSENSE]
MMLU_DEV = [{"question": f"Dev question {i}?", "subject": "s", "choices": ["w", "x", "y", "z"], "answer": i % 4}
            for i in range(6)]
MMLU_TEST = [{"question": f" Test question {i}? ", "subject": "s", "choices": ["p", "q", "r", "s"], "answer": 2}
             for i in range(2)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


# lm-eval's own 0-shot MMLU (only its folder is indexed: the whole built-in index takes ~20 s).
BUILTIN_MMLU = str(Path(lm_eval.tasks.__file__).parent / "mmlu" / "default")


def local_task_manager(root: Path, paths: list[str], data: dict[str, dict[str, str]]) -> TaskManager:
    """A TaskManager over `paths` whose tasks in `data` ({task: {split: jsonl}}) read local files:
    one YAML per task includes the registered one and overrides its dataset, in a later include
    path (lm-eval lets later paths replace tasks, so the groups pick them up by name)."""
    index = TaskManager(include_path=paths, include_defaults=False).task_index
    override = root / "override"
    override.mkdir()
    for task, files in data.items():
        config = {"include": str(index[task].yaml_path), "dataset_path": "json", "dataset_name": None,
                  "dataset_kwargs": {"data_files": files}}
        (override / f"{task}.yaml").write_text(json.dumps(config))
    return TaskManager(include_path=[*paths, str(override)], include_defaults=False)


MATH_SIZES = {"algebra": 3, "counting_and_probability": 1, "geometry": 1, "intermediate_algebra": 1,
              "number_theory": 1, "prealgebra": 1, "precalculus": 2}
BOOLQ_EXTRA = {"question": "is the sky green", "passage": "...", "idx": 2, "label": 0}


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    data = {"metamath_gsm8k": {"test": write_jsonl(root / "gsm8k.jsonl", GSM8K_ROWS)}}
    for subject, n in MATH_SIZES.items():
        data[f"metamath_math_{subject}"] = {"test": write_jsonl(root / f"{subject}.jsonl", math_rows(subject, n))}
    for name, (rows, _, _) in COMMONSENSE.items():
        rows = rows + [BOOLQ_EXTRA] if name == "boolq" else rows
        data[f"llmadapters_{name}"] = {SPLIT[name]: write_jsonl(root / f"{name}.jsonl", rows)}
    mmlu = {"test": write_jsonl(root / "mmlu_test.jsonl", MMLU_TEST),
            "dev": write_jsonl(root / "mmlu_dev.jsonl", MMLU_DEV)}
    paths = [str(TASKS_DIR), BUILTIN_MMLU]
    for task in TaskManager(include_path=paths, include_defaults=False).all_subtasks:
        if task.startswith("mmlu_"):
            data[task] = mmlu
    return local_task_manager(root, paths, data)


# ---------------------------------------------------------------- (c) tasks load, prompts exact


def first_request(manager, task_name):
    task = manager.load([task_name])["tasks"][task_name]
    task.build_all_requests(limit=1, rank=0, world_size=1)
    return task.instances[0].arguments


def test_metamath_prompts_and_generation_settings(manager):
    prompt, gen = first_request(manager, "metamath_gsm8k")
    assert prompt == METAMATH.format(GSM8K_ROWS[0]["question"])
    stops = ["Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT", "Instruction:", "Instruction",
             "Response:", "Response"]
    assert gen == {"until": stops, "do_sample": False, "max_gen_toks": 512}
    prompt, gen = first_request(manager, "metamath_math_geometry")
    assert prompt == METAMATH.format("geometry problem 0: what is $0 + 0$?")
    assert gen == {"until": stops, "do_sample": False, "max_gen_toks": 2048}


@pytest.mark.parametrize("name", list(COMMONSENSE))
def test_llm_adapters_prompt_is_their_instruction(manager, name):
    rows, instruction, gold = COMMONSENSE[name]
    prompt, gen = first_request(manager, f"llmadapters_{name}")
    assert prompt == LLMADAPTERS.format(instruction)
    assert gen == {"until": [], "do_sample": False, "num_beams": 4, "max_gen_toks": 32}
    with pp.protocol_options(llmadapters_prompt="alpaca"):
        assert first_request(manager, f"llmadapters_{name}")[0] == ALPACA.format(instruction)
    hook = name.removesuffix("_easy").removesuffix("_challenge")
    assert getattr(pp, f"llmadapters_{hook}_target")(rows[0]) == gold
    assert getattr(pp, f"llmadapters_{hook}_results")(rows[0], [f"the correct answer is {gold}"]) == {"acc": 1.0}
    assert getattr(pp, f"llmadapters_{hook}_results")(rows[1], [f"the correct answer is {gold}"]) == {"acc": 0.0}


def test_arc_gold_follows_the_answer_key_position():
    assert pp.llmadapters_arc_target(COMMONSENSE["arc_easy"][0][1]) == "answer2"  # 5 choices, key "B"
    assert pp.llmadapters_arc_target(COMMONSENSE["arc_challenge"][0][1]) == "answer2"  # numeric key "2"
    assert pp.llmadapters_arc_text(COMMONSENSE["arc_easy"][0][1]).endswith(
        "Answer5: water vapor\n\nAnswer format: answer1/answer2/answer3/answer4/answer5\n\n"
        + " " * 16 + "### Response:\n" + " " * 16)


def test_mmlu_5shot_is_lm_eval_mmlu_at_five_shots_under_its_own_names(manager):
    builtin = TaskManager(include_path=BUILTIN_MMLU, include_defaults=False)
    subjects = sorted(t.removeprefix("mmlu_") for t in builtin.all_subtasks)
    ours = sorted(t.removeprefix("mmlu_5shot_") for t in manager.all_subtasks if t.startswith("mmlu_5shot_"))
    assert len(subjects) == 57 and ours == subjects
    for category in ("stem", "other", "social_sciences", "humanities"):
        theirs = builtin.task_index[f"mmlu_{category}_tasks"].tags
        assert {t.replace("mmlu_", "mmlu_5shot_", 1) for t in theirs} == manager.task_index[
            f"mmlu_5shot_{category}_tasks"].tags
    task = manager.load(["mmlu_5shot_anatomy"])["tasks"]["mmlu_5shot_anatomy"]
    assert task.config.num_fewshot == 5
    task.build_all_requests(limit=1, rank=0, world_size=1)
    shots = "".join(f"Dev question {i}?\nA. w\nB. x\nC. y\nD. z\nAnswer: {'ABCD'[i % 4]}\n\n" for i in range(5))
    context, continuation = task.instances[0].arguments
    assert context == ("The following are multiple choice questions (with answers) about anatomy.\n\n" + shots +
                       "Test question 0?\nA. p\nB. q\nC. r\nD. s\nAnswer:")
    assert continuation == " A"


# ---------------------------------------------------------------- scores and aggregation


class ScriptedLM(LM):
    """Answers each prompt with a fixed generation (no model): scoring and group aggregation."""

    def __init__(self, replies):
        super().__init__()
        self.replies = replies

    def generate_until(self, requests, disable_tqdm=False):
        return [self.replies.get(r.args[0], "") for r in requests]

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def test_scores_and_group_aggregation(manager):
    replies = {METAMATH.format(GSM8K_ROWS[0]["question"]): "16 - 3 - 4 = 9, 9 * 2 = 18.\nThe answer is: 18",
               METAMATH.format(GSM8K_ROWS[1]["question"]): "The answer is: 4"}
    right = {("algebra", 0), ("algebra", 2), ("geometry", 0), ("precalculus", 1)}  # 4 of 10
    for subject, n in MATH_SIZES.items():
        for i, row in enumerate(math_rows(subject, n)):
            answer = 2 * i if (subject, i) in right else 2 * i + 1
            replies[METAMATH.format(row["problem"])] = f"So it is {answer}.\nThe answer is: {answer}.\n"
    for name, (rows, _, _) in COMMONSENSE.items():  # each task's first item right, the others wrong
        for i, row in enumerate(rows + [BOOLQ_EXTRA] if name == "boolq" else rows):
            hook = name.removesuffix("_easy").removesuffix("_challenge")
            text = getattr(pp, f"llmadapters_{hook}_text")(row)
            gold = getattr(pp, f"llmadapters_{hook}_target")(row)
            replies[text] = f"the correct answer is {gold}" if i == 0 else "the correct answer is unknown"
    out = simple_evaluate(model=ScriptedLM(replies), tasks=["metamath_gsm8k", "metamath_math",
                                                            "llmadapters_commonsense"],
                          task_manager=manager, bootstrap_iters=0)
    results = out["results"]
    assert results["metamath_gsm8k"]["exact_match,none"] == 0.5
    assert results["metamath_math_algebra"]["exact_match,none"] == pytest.approx(2 / 3)
    assert results["metamath_math"]["exact_match,none"] == pytest.approx(4 / 10)  # weighted by size (unweighted: 0.31)
    assert results["llmadapters_boolq"]["acc,none"] == pytest.approx(1 / 3)
    assert results["llmadapters_piqa"]["acc,none"] == 0.5
    assert results["llmadapters_commonsense"]["acc,none"] == pytest.approx((1 / 3 + 7 * 0.5) / 8)  # unweighted
    assert out["n-shot"]["metamath_gsm8k"] == 0 and out["n-shot"]["llmadapters_hellaswag"] == 0


# ---------------------------------------------------------------- (d) end to end on a tiny model


@pytest.fixture(scope="module")
def tiny_lm():
    rng = random.Random(0)
    words = "the answer is correct choose question solution ending option true false sky roof".split()
    lines = [" ".join(rng.choices(words, k=12)) for _ in range(200)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>", "<pad>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)).eval()
    return CappedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=64)  # the suite's wrapper (beam search)


def test_every_paper_task_scores_on_a_tiny_model(manager, tiny_lm):
    groups = ["metamath_gsm8k", "metamath_math", "llmadapters_commonsense", "mmlu_5shot", "mmlu"]
    # MetaMath's 512/2048 new tokens (checked above) would take a while here: 16 are enough to score.
    out = simple_evaluate(model=tiny_lm, tasks=groups, task_manager=manager, limit=2, bootstrap_iters=0,
                          gen_kwargs={"max_gen_toks": 16})
    results = out["results"]
    for name, metric in [("metamath_gsm8k", "exact_match,none"), ("metamath_math", "exact_match,none"),
                         ("llmadapters_commonsense", "acc,none"), ("mmlu_5shot", "acc,none")]:
        assert 0.0 <= results[name][metric] <= 1.0, name
    for task in [f"metamath_math_{s}" for s in MATH_SUBJECTS]:
        assert 0.0 <= results[task]["exact_match,none"] <= 1.0
    for task in COMMONSENSE_GROUP:
        assert 0.0 <= results[task]["acc,none"] <= 1.0
        assert out["n-samples"][task]["effective"] == 2
    assert out["n-shot"]["mmlu_5shot_anatomy"] == 5 and out["n-shot"]["mmlu_anatomy"] == 0
    assert sum(1 for task in results if task.startswith("mmlu_5shot_")) == 57 + 4
    assert sum(1 for task in results if task.startswith("mmlu_") and "5shot" not in task) == 57 + 4
    assert 0.0 <= results["mmlu"]["acc,none"] <= 1.0
