#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (PyPI llama-cpp-python[server], MIT) once per
# machine and install it into ./.venv, for `backend: llama.cpp` and the engine tests.
#
# llama-cpp-python ships only an sdist: pip compiles llama.cpp from source (7-9 min on a 2-core
# box). The wheel is cached in ~/.cache/codellama-lsp/wheels/<key>/, keyed by the version, the
# CMAKE_ARGS, the Python tag and (for -DGGML_NATIVE=ON, which tunes the code to this CPU) the CPU
# flags, so a second run only installs (seconds).
#
# torch must stay exactly as pinned: the llama-cpp-python wheel goes in with --no-deps, its own
# small runtime deps and the server extras with exact pins (none of them depends on torch; the
# script checks torch's version before and after).
#
# It also keeps llama.cpp's own PEFT → GGUF LoRA converter (convert_lora_to_gguf.py, the
# convert_hf_to_gguf.py / conversion/ model definitions it imports and the vendored gguf-py),
# which are in the sdist's vendor/llama.cpp/ but not in the wheel: the sdist is downloaded next to
# the wheels (pip download, once), the converter files extracted into
# <cache>/llama.cpp-convert-<version>/ and copied to .venv/share/llama.cpp-convert/
# (model_runtime/gguf_lora.py runs it from there). Its Python needs (torch, transformers,
# safetensors, numpy, pyyaml, requests, tqdm, sentencepiece) are all in the venv already.
#
# Usage: scripts/build_llama_cpp.sh            build if needed, install
#        CMAKE_ARGS="..." scripts/build_llama_cpp.sh
#        LLAMA_CPP_WHEEL_CACHE=/path scripts/build_llama_cpp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=ON"}
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "no .venv: run scripts/setup.sh first" >&2
  exit 1
fi
# The runtime deps of llama-cpp-python and its [server] extra, resolved by pip next to torch 2.13
# (pip install --dry-run "llama-cpp-python[server]==0.3.36", 2026-12-02).
DEPS=(
  "diskcache==5.6.3"
  "fastapi==0.165.0"
  "starlette==1.10.0"
  "opentelemetry-api==1.45.2"
  "pydantic-settings==2.16.3"
  "python-dotenv==1.2.4"
  "sse-starlette==3.7.0"
  "starlette-context==0.3.6"
  "uvicorn==0.54.0"
)

pip_q() {
  "$PY" -m pip "$@" 2> >(grep -v "^WARNING: Location 'file://" >&2)
}

torch_version() {
  "$PY" -c "import importlib.metadata as m; print(m.version('torch'))" 2>/dev/null || echo none
}

installed=$("$PY" -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))" \
  2>/dev/null || true)
pytag=$("$PY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
cpu=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-12)
key=$(printf '%s|%s|%s|%s|%s' "$VERSION" "$CMAKE_ARGS" "$pytag" "$(uname -m)" "$cpu" \
  | sha256sum | cut -c1-16)
cache=${LLAMA_CPP_WHEEL_CACHE:-"$HOME/.cache/codellama-lsp/wheels"}/llama-cpp-python-$VERSION-$key
stamp=.venv/.llama-cpp-$key
wheels_root=${LLAMA_CPP_WHEEL_CACHE:-"$HOME/.cache/codellama-lsp/wheels"}
convert_cache=$wheels_root/llama.cpp-convert-$VERSION
convert_dest=.venv/share/llama.cpp-convert
convert_stamp=.venv/.llama-cpp-convert-$VERSION

install_converter() {
  # llama.cpp's LoRA converter from the sdist (cached), into the venv.
  if [ ! -f "$convert_cache/convert_lora_to_gguf.py" ]; then
    local sdist="$wheels_root/llama_cpp_python-$VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
      mkdir -p "$wheels_root"
      pip_q download -q --no-deps --no-binary :all: -d "$wheels_root" "llama-cpp-python==$VERSION"
    fi
    local top="llama_cpp_python-$VERSION/vendor/llama.cpp"
    rm -rf "$convert_cache.tmp"
    mkdir -p "$convert_cache.tmp"
    tar -xzf "$sdist" -C "$convert_cache.tmp" --strip-components=3 \
      "$top/convert_lora_to_gguf.py" "$top/convert_hf_to_gguf.py" "$top/conversion" \
      "$top/gguf-py/gguf" "$top/gguf-py/LICENSE" "$top/LICENSE"
    rm -rf "$convert_cache"
    mv "$convert_cache.tmp" "$convert_cache"
    echo "kept llama.cpp's LoRA converter → $convert_cache"
  fi
  rm -rf "$convert_dest.tmp"
  mkdir -p "$(dirname "$convert_dest")"
  cp -r "$convert_cache" "$convert_dest.tmp"
  rm -rf "$convert_dest"
  mv "$convert_dest.tmp" "$convert_dest"
  touch "$convert_stamp"
  echo "installed llama.cpp's convert_lora_to_gguf.py into $convert_dest"
}

if [ "$installed" = "$VERSION" ] && [ -f "$stamp" ]; then
  echo "llama-cpp-python $VERSION already installed ($CMAKE_ARGS)"
  if [ ! -f "$convert_stamp" ] || [ ! -f "$convert_dest/convert_lora_to_gguf.py" ]; then
    install_converter
  fi
  exit 0
fi

wheel=$(ls "$cache"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $VERSION with CMAKE_ARGS=\"$CMAKE_ARGS\" (several minutes)…"
  mkdir -p "$cache"
  start=$(date +%s)
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    pip_q wheel --no-deps --no-binary llama-cpp-python -w "$cache.tmp" \
    "llama-cpp-python==$VERSION"
  mv "$cache.tmp"/llama_cpp_python-*.whl "$cache"/
  rmdir "$cache.tmp" 2>/dev/null || true
  printf '%s\n' "$CMAKE_ARGS" > "$cache/CMAKE_ARGS"
  echo "built in $(($(date +%s) - start)) s → $cache"
  wheel=$(ls "$cache"/llama_cpp_python-"$VERSION"-*.whl | head -n1)
fi

before=$(torch_version)
pip_q install -q --no-deps --force-reinstall "$wheel"
pip_q install -q "${DEPS[@]}"
after=$(torch_version)
if [ "$before" != "$after" ]; then
  echo "torch changed from $before to $after: restore it with pip install torch==$before" >&2
  exit 1
fi
"$PY" -c "import llama_cpp, llama_cpp.server.app; print('llama_cpp', llama_cpp.__version__)"
install_converter
touch "$stamp"
echo "installed llama-cpp-python $VERSION into .venv"
