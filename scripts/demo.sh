#!/usr/bin/env bash
# The main job: set up, export MobileNetV1-w4a4 (seeded random weights) and show its dataflow layers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p build/demo
.venv/bin/finnsplit zoo mobilenet-v1-w4a4 -o build/demo/mobilenet.onnx
.venv/bin/finnsplit inspect build/demo/mobilenet.onnx
