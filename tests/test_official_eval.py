"""The paper protocols against outputs of the official evaluation code (computed outside this
project, by running the official functions; the expected values are pasted here).

- LLM-Adapters (AGI-Edgerunners/LLM-Adapters@816657208af4db747803f87ba40a4c71383fed7a,
  commonsense_evaluate.py): generate_prompt, and `evaluate` (GenerationConfig(temperature=0.1,
  top_p=0.75, top_k=40, num_beams=4), max_new_tokens=32, left padding with id 0, input_ids only,
  batch_decode(...).split("### Response:")[1].strip()) run with transformers 4.36.0 (the version
  NVlabs/DoRA's commonsense_reasoning pins, whose eval scripts MiLoRA's table follows, batch size 1)
  on the tiny LLaMA below, float32 on CPU, batches in lm-eval's order (longest prompt first).
- MetaMath (meta-math/MetaMath@fe667b14f9a4c51bde9809adafb82b6b5d255800, eval_gsm8k.py):
  extract_answer_number with PyPI fraction 2.2.0.
"""

import string

import pytest
import torch
from lm_eval.api.instance import Instance
from test_paper_protocols import COMMONSENSE
from tokenizers import Tokenizer, decoders, models, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from evaluation import paper_protocols as pp
from evaluation.run import CappedHFLM, evaluate_run



# ---------------------------------------------------------------- LLM-Adapters' prompt

# generate_prompt(instruction) of commonsense_evaluate.py, printed with repr().
OFFICIAL_PROMPTS = {
    "boolq": 'Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n                ### Instruction:\n                Please answer the following question with true or false, question: does ethanol take more energy make that produces?\n\nAnswer format: true/false\n\n                ### Response:\n                ',  # noqa: E501
    "winogrande": 'Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n                ### Instruction:\n                Please choose the correct answer to fill in the blank to complete the given sentence: Sarah was a much better surgeon than Maria so _ always got the easier cases.\n\nOption1: Sarah Option2: Maria Answer format: option1/option2\n\n                ### Response:\n                ',  # noqa: E501
    "openbookqa": 'Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n                ### Instruction:\n                Please choose the correct answer to the question: A person wants to start saving money so that they can afford a nice vacation at the end of the year. After looking over their budget and expenses, they decide the best way to save money is to\n\nAnswer1: make more phone calls Answer2: quit eating lunch out Answer3: buy less with monopoly money Answer4: have lunch with friends\n\nAnswer format: answer1/answer2/answer3/answer4\n\n                ### Response:\n                ',  # noqa: E501
}


@pytest.mark.parametrize("name", list(OFFICIAL_PROMPTS))
def test_prompt_is_their_generate_prompt_character_for_character(name):
    rows, _, _ = COMMONSENSE[name]
    assert getattr(pp, f"llmadapters_{name}_text")(rows[0]) == OFFICIAL_PROMPTS[name]
    with pp.protocol_options(llmadapters_prompt="alpaca"):  # the clean Alpaca text, as an option
        clean = getattr(pp, f"llmadapters_{name}_text")(rows[0])
    assert clean == OFFICIAL_PROMPTS[name].replace("request. ", "request.").replace(" " * 16, "")
    assert pp.OPTIONS.llmadapters_prompt == "official"


# ---------------------------------------------------------------- MetaMath's fractions

# (the number after "The answer is: ", what their extract_answer_number returns; None: it raises)
GSM8K_FRACTIONS = [
    ('1/3', 0),
    ('2/3', 1),
    ('7/2', 4),
    ('5/2', 2),
    ('-7/2', -4),
    ('+7/2', 4),
    ('10/4', 2),
    ('0/5', 0),
    ('3/0', 3),
    ('3/00', None),
    ('0/0', 0),
    ('1/4', 0),
    ('3/4', 1),
    ('9/2', 4),
    ('11/2', 6),
    ('12345678901234567/1', 12345678901234568),
    ('12345678901234567/3', 4115226300411523),
    ('1234567890123456/1', 1234567890123456),
    ('1234567890123457/2', 617283945061728),
    ('9007199254740993/1', 9007199254740992),
    ('9007199254740993/3', 3002399751580330),
    ('99999999999999999/10', 10000000000000000),
    ('1234567890123456789/1000', 1234567890123457),
    ('123456789012345678901/7', 17636684144620812288),
    ('100000000000000001/2', 50000000000000000),
    ('2000000000000000001/4', 499999999999999936),
    ('1000000000000000000000000000000/3', 333333333333333316505293553664),
    ("1" + "0" * 400 + "/7", None),
    ('5/000000000000000000001', 5),
    ('7/123456789012345678901', 0),
    ('45/90', 0),
    ('1000000000000000005/10', 99999999999999984),
    ('37/074', 0),
    ('9999999999999999/2', 5000000000000000),
    ('12345678901234567', 12345678901234568),
]


@pytest.mark.parametrize("number, theirs", GSM8K_FRACTIONS)
def test_gsm8k_fractions_as_their_fraction_package_reads_them(number, theirs):
    assert pp.gsm8k_answer(f"The answer is: {number}") == theirs


def test_gsm8k_exact_fractions_option():
    with pp.protocol_options(metamath_fractions="exact"):
        assert pp.gsm8k_answer("The answer is: 12345678901234567/3") == 4115226300411522
        assert pp.gsm8k_answer("The answer is: 1000000000000000005/10") == 100000000000000000
        assert pp.gsm8k_answer("The answer is: 3/00") is None
        assert pp.gsm8k_answer("The answer is: 7/2") == 4
    # the official arithmetic again outside the block
    assert pp.gsm8k_answer("The answer is: 12345678901234567/3") == 4115226300411523


def test_bad_options_fail_before_the_model_is_touched(tmp_path):
    for bad in ({"metamath_fractions": "decimal"}, {"beam_search": "vllm"}, {"llmadapters_template": "x"}):
        with pytest.raises(ValueError, match="paper_protocol"):
            evaluate_run(None, None, None, None, tmp_path / "eval.json", lm_eval_tasks=["llmadapters_boolq"],
                         paper_protocol=bad)


# ---------------------------------------------------------------- LLM-Adapters' beam search


def tiny_llama():
    """A character-level LLaMA-style tokenizer (<unk>=0 also pads, <s>=1 prepended, </s>=2) and a
    1-layer LLaMA with fixed weights (std 0.5; the </s> row of lm_head x4, so that beams end)."""
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>"] + chars)}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    bpe.decoder = decoders.Fuse()
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<unk>")
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
        pad_token_id=0)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.ones_like(param) if name.endswith("norm.weight")
                        else torch.randn(param.shape, generator=generator) * 0.5)
        model.lm_head.weight[2] *= 4.0
    return tokenizer, model


WORDS = "sky roof cat answer option ending solution tree river stone cloud fire lamp book door road".split()
INSTRUCTIONS = [instruction for _, instruction, _ in COMMONSENSE.values()] + [
    f"Please answer the following question with true or false, question: is {word} a word?\n\n"
    "Answer format: true/false" for word in WORDS]
GEN = {"until": [], "do_sample": False, "num_beams": 4, "max_gen_toks": 32}  # the llmadapters tasks'


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama()


def ours(tiny, batch_size, **settings):
    tokenizer, model = tiny
    lm = CappedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    for key, value in settings.items():
        setattr(lm, key, value)
    requests = [Instance("generate_until", {}, (pp.LLMADAPTERS_PROMPT.format(instruction=text), dict(GEN)), i)
                for i, text in enumerate(INSTRUCTIONS)]
    return lm.generate_until(requests, disable_tqdm=True)


def their_answer(generation: str) -> str:
    """What commonsense_evaluate.py keeps of a generation (the text up to a repeated "### Response:")."""
    return generation.split("### Response:")[0].strip()

# Their `evaluate` outputs on the 24 prompts (LLMADAPTERS_PROMPT around INSTRUCTIONS), transformers
# 4.36.0, batch size 1 and batch size 4 (batches in lm-eval's order).
OFFICIAL_BS1 = [
    '"8,z\'M{z\'z\'z\'z\'z\'z\'z\'z\'z\'z\'z\'z\'',
    '3F">8Y4Xv8Yq"sE"s',
    '="E"eXEKX{XE"_+',
    'HX3v"UY',
    '=',
    'H)zSX"_XE,3X"""8X""_8Yq"E8Yq"|,3',
    '\'-dq"""E""""E""""""""""""""E"E"',
    '32"""""""""_',
    '"""8"""""8""""""""""""""8z',
    'x3"""{z""""{!L"""{!E"""""_',
    '={z\'M"""""""""""""{FE"""""_3"E"8',
    '=="""2E"""""_',
    'M""""2E""""_',
    'M""""2E""""_',
    'xz\'XE"""""""""""""""h2s',
    'x3"""""2E""""""""""_',
    'x3""""2E""""_',
    '"""""2E""""#"""""_',
    'M"""""+E',
    'x3"""""2E""""#"""""_',
    'x3"""""+E',
    'x3"""""2E""{XE"""""_',
    'x3"""{z\'!E',
    'x3"""""""""""""""z\'3',
]
OFFICIAL_BS4_UNMASKED = [
    '{z"3"f"f"3"f"f"3Xz"3"3"3"3"3"3',
    'z"f{Xz"f{Xz"f"f"f{X"f"f{!f"f"f{X',
    '{\n!EKXz"E+',
    'HX3v"UY',
    '{ooo="x3"""""""""""_',
    '{\n"f"f"f{!f"f"f{!f"f"f"f"f"f"f"f',
    '\'-dq"""E""""E""""""""""""""E"E"',
    '{3E+',
    '"""""""""""""""8z\'3',
    'x3"""{z""""{!L"""{!E"""""_',
    'x3"{!N3""""{!NXvXv){z\'f"""U+""""',
    "xz'3'XE",
    '=="x3"{FBE"_\nh]"8z\'d3"8z\'d-3X=',
    'M"3""2EEE""UXE""8z\'d3"E{zUhE"E""',
    'xz\'XE"""""""""""""""h2s',
    'x3"""""2E""""""""""_',
    'x3""""2E""""_',
    '"""""2E""""#"""""_',
    'M"""""+E',
    'x3"""""2E""""#"""""_',
    'x3"""""+E',
    'x3""{!NXvX{!NXvXv)"Uh2E""Uh2""""',
    'x3"""{z\'!E',
    'x3"""""""""""""""z\'3',
]

def test_beam_search_is_transformers_generate(tiny):
    tokenizer, model = tiny
    expected = []
    for text in INSTRUCTIONS:
        ids = tokenizer(pp.LLMADAPTERS_PROMPT.format(instruction=text), return_tensors="pt")
        out = model.generate(**ids, num_beams=4, max_new_tokens=32, do_sample=False)
        expected.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    assert len(expected) == 24 and len({len(e) for e in expected}) > 5  # beams end at different lengths
    assert ours(tiny, 1) == expected
    assert ours(tiny, 4) == expected  # masked left padding: batching changes nothing here
    assert ours(tiny, 1, beam_attention_mask=False) == expected  # no padding at batch size 1
    # lm-eval's own path (its stop criterion over the batch x beams rows) ends some searches early.
    assert sum(a != b for a, b in zip(ours(tiny, 1, beam_search="lm_eval"), expected)) >= 5


def test_beam_search_against_their_script_under_transformers_4_36(tiny):
    # Batch size 1, the paper's: 23 of 24 equal. Item 14 differs by transformers' version, not by
    # our code: 4.36 scores a beam that ended in </s> by its length without the </s>, transformers
    # 5 with it, so 4.36 keeps the 32-token beam where 5 keeps the 5-token one.
    answers = [their_answer(g) for g in ours(tiny, 1)]
    assert [i for i, (a, b) in enumerate(zip(answers, OFFICIAL_BS1)) if a != b] == [14]
    assert answers[14] == OFFICIAL_BS1[14][:5]
    # Their script at batch size 4 attends to the left padding (no attention_mask): 12 of 24
    # answers change; beam_attention_mask=False reproduces all but item 14 (above) and item 21.
    unmasked = [their_answer(g) for g in ours(tiny, 4, beam_attention_mask=False)]
    assert sum(a != b for a, b in zip(OFFICIAL_BS1, OFFICIAL_BS4_UNMASKED)) == 12
    assert [i for i, (a, b) in enumerate(zip(unmasked, OFFICIAL_BS4_UNMASKED)) if a != b] == [14, 21]
