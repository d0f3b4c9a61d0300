#!/usr/bin/env bash
# Lint, type-check and run every test suite; exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - start ))s elapsed)"; }
stage "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
stage "mypy"
.venv/bin/mypy
stage "import graph, code size, generated option docs"
.venv/bin/python scripts/import_graph.py
.venv/bin/python scripts/code_size.py
.venv/bin/python scripts/option_docs.py --check
stage "llama.cpp engine for the engine-backend tests (built once per machine, cached)"
bash scripts/build_llama_cpp.sh
stage "pytest"
.venv/bin/pytest -q --durations=15
if [ -x clients/vscode/scripts/test.sh ]; then
  stage "VS Code extension (unit + real VS Code in code-server)"
  bash clients/vscode/scripts/test.sh
fi
stage "done"
