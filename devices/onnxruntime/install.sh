#!/usr/bin/env bash
# Install edgetl's device side on any ONNX Runtime host (x86_64 or aarch64 Linux, macOS, Windows+bash).
#   bash install.sh [WHEEL_OR_NAME] [onnxruntime-gpu]   # the second argument swaps in a GPU build of ONNX Runtime
set -euo pipefail
venv="${EDGETL_VENV:-$HOME/edgetl-venv}"
source="${1:-edgetl}"
python3 -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install "${source}[device]"
if [ "${2:-}" = "onnxruntime-gpu" ]; then
  "$venv/bin/pip" uninstall -y onnxruntime
  "$venv/bin/pip" install onnxruntime-gpu
fi
"$venv/bin/edgetl" doctor || true
