"""Shared test setup: offline, one torch thread, tiny models built from config."""
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


BIAS_METHOD = """
from dataclasses import dataclass
import torch
from torch import nn
from adapters import AdaptedLayer, register

@dataclass
class Options:
    r: int

@register({name!r}, Options)
class BiasShift(AdaptedLayer):
    \"\"\"Δy = b: a trainable output bias (ΔW = 0), the smallest possible method.\"\"\"
    def __init__(self, base_layer, options, shared=None, init_weights=True):
        super().__init__(base_layer, options)
        self.shift = nn.Parameter(torch.zeros(self.out_features))
    def adapter_forward(self, x):
        return self.shift.expand(*x.shape[:-1], -1)
    def delta_out_in(self):
        return torch.zeros(self.out_features, self.in_features)
"""


def write_bias_method(folder, module: str, name: str, yaml_extra: str = ""):
    """A method defined outside the package: `<module>.py` registering `name` (a trainable output
    bias) and `<name>.yaml` naming that module, in `folder` (for LORABENCH_METHOD_DIRS)."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(BIAS_METHOD.format(name=name))
    (folder / f"{name}.yaml").write_text(f"module: {module}\noptions:\n  r: 1\n{yaml_extra}")
    return folder


def write_punkt_tab(root):
    """A stand-in for nltk's English punkt_tab (no abbreviations learnt: the files PunktTokenizer
    reads, empty) under `root`, for NLTK_DATA: IFEval's sentence checks run with it."""
    from pathlib import Path

    from training.preflight import PUNKT_TAB, PUNKT_TAB_FILES

    (Path(root) / PUNKT_TAB).mkdir(parents=True, exist_ok=True)
    for name in PUNKT_TAB_FILES:
        (Path(root) / PUNKT_TAB / name).write_text("")
    return Path(root)


if "NLTK_DATA" not in os.environ:  # nothing downloads punkt_tab here; the DAG refuses IFEval without it
    from training.preflight import punkt_tab_found

    if not punkt_tab_found():
        import tempfile

        os.environ["NLTK_DATA"] = str(write_punkt_tab(tempfile.mkdtemp(prefix="nltk_data_")))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("LORABENCH_THREADS", "1")))


def tiny_llama(seed=0, hidden=32, layers=2, vocab=101):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 3 // 2 + 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def tiny_gpt2(seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                      bos_token_id=0, eos_token_id=0)).eval()


def tiny_roberta(seed=0):
    from transformers import RobertaConfig, RobertaForSequenceClassification
    torch.manual_seed(seed)
    return RobertaForSequenceClassification(RobertaConfig(
        vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=70, num_labels=3, pad_token_id=1)).eval()


def tiny_deberta(seed=0):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification
    torch.manual_seed(seed)
    return DebertaV2ForSequenceClassification(DebertaV2Config(
        vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=64, num_labels=2, pad_token_id=0)).eval()


MODELS = {"llama": tiny_llama, "gpt2": tiny_gpt2, "roberta": tiny_roberta, "deberta": tiny_deberta}


@pytest.fixture
def tokens():
    g = torch.Generator().manual_seed(1)
    return torch.randint(2, 101, (2, 9), generator=g)


# A tiny pretrained base model and an LM task, built once for the whole session (each takes seconds):
# the trainer's tests (faults, reliability, MiLoRA's device init) read them, never write them.
@pytest.fixture(scope="session")
def base(tmp_path_factory):
    from test_training_helpers import make_tiny_base
    return make_tiny_base(tmp_path_factory.mktemp("base"), steps=10)


@pytest.fixture(scope="session")
def lm_task(tmp_path_factory):
    from test_training_helpers import make_lm_task
    return make_lm_task(tmp_path_factory.mktemp("lm_task"))


# `gpu`: a test that needs a CUDA GPU (benchmarks/gpu_check.sh runs them: `pytest -m gpu`); skipped
# where torch sees none, as on the development machines and in CI.
def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped without one (benchmarks/gpu_check.sh runs them)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """.test/config.yaml run once through the DAG (default settings: warm start on), in a temporary
    working directory: test_workflow's end-to-end checks and test_warm's warm-vs-cold comparison."""
    from filelock import FileLock
    from test_workflow import make_workdir, snakemake

    # The suite runs on 2 workers (pytest-xdist, `-n 2 --dist loadfile` in pyproject.toml), each with
    # its own session: the first worker to ask runs the DAG, the other waits for it and reads it.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above the workers' own
    with FileLock(str(shared / "finished_run.lock")):
        done = shared / "finished_run.json"
        if done.exists():
            work, env = json.loads(done.read_text())
            return Path(work), env
        (shared / "dag").mkdir()
        work, env = make_workdir(shared / "dag")
        snakemake(work, "--cores", "2", "--configfile", ".test/config.yaml", env_extra=env)  # no -q: its log times the stages
        done.write_text(json.dumps([str(work), env]))
        return work, env
