#!/usr/bin/env bash
# One command from a fresh Debian machine to generated text: installs what is
# missing, builds, converts the default model (SmolLM2-135M-Instruct, Q4_1
# GGUF dequantized to F16 .stb) and runs bllm-run on it.
#   usage: scripts/setup.sh ["prompt"]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
install_all
log "building into build/"
build build
STB=$BLLM_CACHE/models/smollm2-135m-instruct-f16.stb
if [ ! -s "$STB" ]; then
    log "converting $DEFAULT_GGUF -> $STB"
    build/tools/bllm-convert "$DEFAULT_GGUF" -o "$STB" --type f16
fi
PROMPT=${1:-"What is the capital of France?"}
log "asking it: $PROMPT  (build/tools/bllm-run -m $STB --chat)"
printf '%s\n' "$PROMPT" | build/tools/bllm-run -m "$STB" --chat -n 128 --temp 0
