#!/usr/bin/env bash
# The main job: set up, export MobileNetV1-w4a4 (seeded random weights), split it for 6 Zedboards,
# and run the bundle on 6 virtual boards (the C++ server with its emulate backend; as root each in
# its own network namespace with a 1 Gbit/s link),
# checking every output bit-exactly against the Python executor and the first ones against qonnx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p build/demo
.venv/bin/finnsplit zoo mobilenet-v1-w4a4 -o build/demo/mobilenet.onnx
.venv/bin/finnsplit inspect build/demo/mobilenet.onnx | tail -n 4
.venv/bin/finnsplit build build/demo/mobilenet.onnx --boards 6 -o build/demo/bundle
# As root, each virtual board gets its own network namespace and a link shaped to 1 Gbit/s.
netns=()
if [ "$(id -u)" = 0 ]; then netns=(--netns --link-mbit 1000); fi
.venv/bin/finnsplit virtual build/demo/bundle --images 32 --check build/demo/mobilenet.onnx "${netns[@]}"
