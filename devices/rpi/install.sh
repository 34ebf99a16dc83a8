#!/usr/bin/env bash
# Install edgetl's device side on a Raspberry Pi (64-bit Raspberry Pi OS, Python 3.11). No TensorFlow.
#   bash install.sh                      # from PyPI
#   bash install.sh edgetl-0.1.0-py3-none-any.whl   # from a wheel built on the workstation (python -m build)
set -euo pipefail
venv="${EDGETL_VENV:-$HOME/edgetl-venv}"
source="${1:-edgetl}"
if [ "$(uname -m)" != "aarch64" ]; then
  echo "warning: $(uname -m) is not aarch64; ai-edge-litert ships 64-bit ARM wheels only (use Raspberry Pi OS 64-bit)" >&2
fi
# --system-site-packages lets the venv see Debian's python3-picamera2 (the Pi camera); harmless otherwise.
python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install "${source}[device]"
"$venv/bin/edgetl" doctor || true
echo "edgetl installed in $venv: try  $venv/bin/edgetl predict model_int8.tflite photo.jpg"
