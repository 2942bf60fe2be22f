"""Writes .test/hub/: tiny files in the Hub datasets' schemas (made-up rows, real columns and types).

Run from the repository root: `.venv/bin/python .test/hub/make_fixtures.py`. Each block names the Hub
dataset (and config) whose schema it copies; lm_eval_data.yaml beside it maps the tasks to them.
"""
import glob, json, os, yaml
from pathlib import Path

HUB = Path(".test/hub")

def write(task, split, rows):
    path = HUB / task / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

# cais/mmlu ("all" config: every subject, with its `subject` column): one row per subject and split
import lm_eval
mmlu_dir = Path(lm_eval.__file__).parent / "tasks/mmlu/default"
subjects = sorted(yaml.safe_load(open(f))["dataset_name"] for f in glob.glob(str(mmlu_dir / "mmlu_*.yaml")))
assert len(subjects) == 57, len(subjects)
# test: one question per subject; dev: five per subject, as the Hub's dev split (5-shot prompts)
def mmlu_row(subject, n, answer):
    topic = subject.replace("_", " ")
    return {"question": f"Question {n} on {topic}: which option is correct?", "subject": subject,
            "choices": [f"{topic} {c}" for c in ("one", "two", "three", "four")], "answer": answer}
write("mmlu", "test", [mmlu_row(s, 1, i % 4) for i, s in enumerate(subjects)])
write("mmlu", "dev", [mmlu_row(s, n, (i + n) % 4) for i, s in enumerate(subjects) for n in range(2, 7)])

# openai/gsm8k (main)
gsm = [
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
     "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"),
    ("Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
     "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"),
    ("A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
     "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts of fabric\n#### 3"),
    ("Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?",
     "Tom has 3*4 = <<3*4=12>>12 apples.\nAfter eating 2 he has 12-2 = <<12-2=10>>10 apples.\n#### 10"),
    ("A shop sells pens at $2 each. Ann buys 7 pens. How much does she pay?",
     "Ann pays 7*2 = $<<7*2=14>>14.\n#### 14"),
    ("There are 30 students and 5 buses. How many students ride each bus if they are shared equally?",
     "Each bus takes 30/5 = <<30/5=6>>6 students.\n#### 6"),
]
# train: six rows, so that gsm8k's 5-shot prompt has five examples to draw from
write("gsm8k", "train", [{"question": q, "answer": a} for q, a in gsm])
write("gsm8k", "test", [{"question": q, "answer": a} for q, a in gsm[1:4]])

# EleutherAI/hendrycks_math: one problem per subject (the `type` column), train and test
math_rows = [
    ("Algebra", "If $2x + 3 = 11$, what is $x$?", "Subtracting 3 gives $2x = 8$, so $x = \\boxed{4}$."),
    ("Counting & Probability", "How many ways can 3 books be arranged on a shelf?", "There are $3! = \\boxed{6}$ arrangements."),
    ("Geometry", "What is the area of a square with side length 5?", "The area is $5^2 = \\boxed{25}$."),
    ("Intermediate Algebra", "Find the sum of the roots of $x^2 - 5x + 6 = 0$.", "By Vieta's formulas the sum is $\\boxed{5}$."),
    ("Number Theory", "What is the remainder when 17 is divided by 5?", "Since $17 = 3 \\cdot 5 + 2$, the remainder is $\\boxed{2}$."),
    ("Prealgebra", "What is $\\frac{1}{2} + \\frac{1}{4}$?", "We have $\\frac{2}{4} + \\frac{1}{4} = \\boxed{\\frac{3}{4}}$."),
    ("Precalculus", "Compute $\\cos 0$.", "The cosine of zero is $\\boxed{1}$."),
]
for split, level in (("train", "Level 1"), ("test", "Level 2")):
    write("hendrycks_math", split, [{"problem": p, "level": level, "type": t, "solution": s} for t, p, s in math_rows])

# google/IFEval (ifeval_input_data.jsonl: kwargs hold only each instruction's own arguments)
write("ifeval", "train", [
    {"key": 1000, "prompt": "Write a short poem about the sea. Do not use any commas in your response.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 1001, "prompt": "Describe a cat in fewer than 40 words, as a list of exactly 2 markdown bullet points such as:\n* This is a point.",
     "instruction_id_list": ["length_constraints:number_words", "detectable_format:number_bullet_lists"],
     "kwargs": [{"relation": "less than", "num_words": 40}, {"num_bullets": 2}]},
    {"key": 1002, "prompt": "Answer in German only: what is the capital of France?",
     "instruction_id_list": ["language:response_language"], "kwargs": [{"language": "de"}]},
])

# aps/super_glue (boolq)
boolq = [
    ("do iran and afghanistan speak the same language", "Persian language -- Persian is a Western Iranian language spoken in Iran, Afghanistan and Tajikistan.", 1),
    ("is the sun a star", "Sun -- The Sun is the star at the center of the Solar System.", 1),
    ("can penguins fly", "Penguin -- Penguins are a group of aquatic flightless birds.", 0),
    ("is water wet at room temperature", "Water -- Water is a liquid at room temperature.", 1),
]
write("boolq", "train", [{"question": q, "passage": p, "idx": i, "label": l} for i, (q, p, l) in enumerate(boolq[:3])])
write("boolq", "validation", [{"question": q, "passage": p, "idx": i, "label": l} for i, (q, p, l) in enumerate(boolq[1:])])

# baber/piqa
piqa = [
    ("How do I ready a guinea pig cage for it's new occupants?", "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.", "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.", 0),
    ("To open a jar with a tight lid,", "run the lid under hot water for a minute.", "put the jar in the freezer overnight.", 0),
    ("How to dry wet shoes quickly?", "Fill them with dry newspaper.", "Fill them with wet sand.", 0),
    ("To cool a drink fast,", "leave it in the sun.", "put it in an ice bath with salt.", 1),
]
write("piqa", "train", [{"goal": g, "sol1": a, "sol2": b, "label": l} for g, a, b, l in piqa[:3]])
write("piqa", "validation", [{"goal": g, "sol1": a, "sol2": b, "label": l} for g, a, b, l in piqa[1:]])

# lighteval/siqa (label is "1".."3" as a string)
siqa = [
    ("Tracy didn't go home that evening and resisted Riley's attacks.", "What does Tracy need to do before this?", "make a new plan", "Go home and see Riley", "Find somewhere to go", "3"),
    ("Sydney walked past a homeless woman asking for change but did not have any money they could give to her.", "How would you describe Sydney?", "sympathetic", "like a person who was unable to help", "incredulous", "1"),
    ("Sasha protected the patients' rights by making new laws regarding cancer drug trials.", "What will patients want to do next?", "write new laws", "get petitions signed", "live longer", "3"),
    ("Jordan was in charge of taking the food on the camping trip.", "What will Jordan want to do next?", "forget the food", "pack the cooler", "skip the trip", "2"),
]
keys = ("context", "question", "answerA", "answerB", "answerC", "label")
write("social_iqa", "train", [dict(zip(keys, r)) for r in siqa[:3]])
write("social_iqa", "validation", [dict(zip(keys, r)) for r in siqa[1:]])

# Rowan/hellaswag (label is a string)
hella = [
    ("Removing ice from car", "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.", "then",
     [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.", ", the man puts on a christmas coat, knitted with netting.", ", the man continues removing the snow on his car."], "3", "activitynet~v_-1IBHYS3L-Y"),
    ("Baking cookies", "A woman mixes flour and sugar in a bowl.", "she",
     [" pours the dough into a car.", " adds eggs and stirs the batter.", " throws the bowl at the wall.", " paints the bowl blue."], "1", "activitynet~v_cookies"),
    ("Playing guitar", "A boy sits on a chair holding a guitar.", "he",
     [" strums the strings and sings.", " eats the guitar.", " throws the chair away.", " dives into a pool."], "0", "activitynet~v_guitar"),
    ("Washing dishes", "A man fills the sink with soapy water.", "he",
     [" sleeps in the sink.", " drives to work.", " paints the ceiling.", " scrubs the plates with a sponge."], "3", "activitynet~v_dishes"),
]
def hella_row(i, r, split):
    label, a, b, endings, gold, source = r
    return {"ind": i, "activity_label": label, "ctx_a": a, "ctx_b": b, "ctx": f"{a} {b}", "endings": endings,
            "source_id": source, "split": split, "split_type": "indomain", "label": gold}
write("hellaswag", "train", [hella_row(i, r, "train") for i, r in enumerate(hella[:3])])
write("hellaswag", "validation", [hella_row(i, r, "val") for i, r in enumerate(hella[1:])])

# allenai/winogrande (winogrande_xl; answer is "1" or "2")
wino = [
    ("Sarah was a much better surgeon than Maria so _ always got the harder cases.", "Sarah", "Maria", "1"),
    ("The trophy doesn't fit into the suitcase because the _ is too large.", "trophy", "suitcase", "1"),
    ("The trophy doesn't fit into the suitcase because the _ is too small.", "trophy", "suitcase", "2"),
    ("John couldn't lift the box onto the shelf because the _ was too high.", "box", "shelf", "2"),
]
keys = ("sentence", "option1", "option2", "answer")
write("winogrande", "train", [dict(zip(keys, r)) for r in wino[:3]])
write("winogrande", "validation", [dict(zip(keys, r)) for r in wino[1:]])

# allenai/ai2_arc (ARC-Easy, ARC-Challenge): choices {text, label}; some questions use labels 1-4
def arc(i, q, texts, key, labels="ABCD"):
    return {"id": f"Mercury_{7000 + i}", "question": q,
            "choices": {"text": texts, "label": list(labels[:len(texts)])}, "answerKey": key}
arc_rows = [
    arc(0, "Which of these is a source of light?", ["the Sun", "the Moon", "a rock", "a mirror"], "A"),
    arc(1, "What do plants need to make food?", ["sand", "sunlight", "plastic", "noise"], "B"),
    arc(2, "Which state of matter has a fixed shape?", ["gas", "liquid", "solid"], "C"),
    arc(3, "Which unit measures mass?", ["meter", "second", "liter", "kilogram"], "4", "1234"),
]
for task in ("arc_easy", "arc_challenge"):
    write(task, "train", arc_rows[:3])
    write(task, "test", arc_rows[1:])

# allenai/openbookqa (main)
obqa = [
    {"id": "7-980", "question_stem": "The sun is responsible for", "choices": {"text": ["puppies learning new tricks", "children growing up and getting old", "flowers wilting in a vase", "plants sprouting, blooming and wilting"], "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
    {"id": "7-584", "question_stem": "When food is reduced in the stomach", "choices": {"text": ["the mind needs time to digest", "take a second to digest what I said", "nutrients are being deconstructed", "reader's digest is a body of works"], "label": ["A", "B", "C", "D"]}, "answerKey": "C"},
    {"id": "7-870", "question_stem": "Stars are", "choices": {"text": ["warm lights that float", "made out of nitrate", "great balls of gas burning billions of miles away", "lights in the sky"], "label": ["A", "B", "C", "D"]}, "answerKey": "C"},
    {"id": "7-321", "question_stem": "A magnet will stick to", "choices": {"text": ["a wooden table", "an iron nail", "a glass cup", "a paper sheet"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
]
write("openbookqa", "train", obqa[:3])
write("openbookqa", "test", obqa[1:])

# qiaojin/PubMedQA (pqa_labeled: one split "train"); the task keeps the official test pubids, so
# three rows use test-set ids (12377809, 26163474, 19100463) and one (10808977) does not.
def pubmed(pubid, question, contexts, decision):
    return {"pubid": pubid, "question": question,
            "context": {"contexts": contexts, "labels": ["BACKGROUND", "RESULTS"][:len(contexts)],
                        "meshes": ["Humans", "Treatment Outcome"],
                        "reasoning_required_pred": list(decision), "reasoning_free_pred": list(decision)},
            "long_answer": f"The answer is {decision}.", "final_decision": decision}
write("pubmedqa", "train", [
    pubmed(10808977, "Can tailored interventions increase mammography use?", ["Women were randomised to tailored letters or usual care.", "Mammography use was compared after a year."], "yes"),
    pubmed(12377809, "Does exercise lower resting blood pressure?", ["Adults were randomised to exercise or control.", "Systolic pressure fell in the exercise group."], "yes"),
    pubmed(26163474, "Is coffee intake associated with fewer migraines?", ["A cohort of patients reported coffee intake.", "No association was found."], "no"),
    pubmed(19100463, "Does a second opinion change the diagnosis?", ["Cases were reviewed twice.", "Some diagnoses changed, others did not."], "maybe"),
])

# EleutherAI/wikitext_document_level (wikitext-2-raw-v1): one document per row in `page`
pages = [
    " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game developed by Sega . \n",
    " = Tower Building of the Little Rock Arsenal = \n \n The Tower Building of the Little Rock Arsenal , also known as U.S. Arsenal Building , is a building located in Little Rock , Arkansas . \n",
    " = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre actor . He had a guest @-@ starring role on the television series The Bill in 2000 . \n",
    " = Homarus gammarus = \n \n Homarus gammarus , known as the European lobster or common lobster , is a species of clawed lobster from the eastern Atlantic Ocean . \n",
]
write("wikitext", "train", [{"page": p} for p in pages[:3]])
write("wikitext", "test", [{"page": p} for p in pages[1:]])

# HuggingFaceFW/finewiki (train, streamed): PEFT's MetaMathQA benchmark reads only `text` of its
# first 100 rows (peft_wiki_loss); id/title/url stand for the rest of a row. One row is long, so the
# 768-token cut of their loss is exercised.
wiki = [
    ("Valkyria Chronicles III", "Valkyria Chronicles III is a tactical role-playing video game developed by Sega and Media.Vision for the PlayStation Portable."),
    ("Little Rock Arsenal", "The Tower Building of the Little Rock Arsenal is a building located in MacArthur Park in downtown Little Rock, Arkansas. " * 40),
    ("Robert Boulter", "Robert Boulter is an English film, television and theatre actor. He had a guest-starring role on the television series The Bill in 2000."),
    ("Homarus gammarus", "Homarus gammarus, known as the European lobster or common lobster, is a species of clawed lobster from the eastern Atlantic Ocean."),
]
write("finewiki", "train", [{"id": f"enwiki/{i}", "title": t, "url": f"https://en.wikipedia.org/wiki/{t.replace(' ', '_')}", "text": x}
                            for i, (t, x) in enumerate(wiki)])
