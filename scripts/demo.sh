#!/usr/bin/env bash
# The main job: set up, export MobileNetV1-w4a4 (seeded random weights), split it for 6 Zedboards,
# and run the bundle on 6 virtual boards (the C++ server with its emulate backend, on loopback),
# checking every output bit-exactly against the Python executor and the first ones against qonnx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p build/demo
.venv/bin/finnsplit zoo mobilenet-v1-w4a4 -o build/demo/mobilenet.onnx
.venv/bin/finnsplit inspect build/demo/mobilenet.onnx | tail -n 4
.venv/bin/finnsplit build build/demo/mobilenet.onnx --boards 6 -o build/demo/bundle
.venv/bin/finnsplit virtual build/demo/bundle --images 32 --check build/demo/mobilenet.onnx
