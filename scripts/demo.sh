#!/usr/bin/env bash
# The main job: set up, export MobileNetV1-w4a4 (seeded random weights), split it for 6 Zedboards,
# then run it on virtual boards:
#  1. `finnsplit virtual`: the bundle on 6 board servers (emulate backend), every output checked
#     bit-exactly against the Python executor and the first ones against qonnx;
#  2. as root, `finnsplit run --virtual-fleet`: 6 boards + 1 spare, each a network namespace with a
#     1 Gbit/s link, its own sshd and board agent; the orchestrator deploys over SSH, starts the
#     chain over MQTT (Mosquitto), a board is killed mid-stream and its stage fails over to the spare.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p build/demo
.venv/bin/finnsplit zoo mobilenet-v1-w4a4 -o build/demo/mobilenet.onnx
.venv/bin/finnsplit inspect build/demo/mobilenet.onnx | tail -n 4
.venv/bin/finnsplit build build/demo/mobilenet.onnx --boards 6 -o build/demo/bundle
.venv/bin/finnsplit virtual build/demo/bundle --random 32 --check build/demo/mobilenet.onnx
if [ "$(id -u)" = 0 ]; then
  .venv/bin/finnsplit run build/demo/bundle --virtual-fleet 1 --link-mbit 1000 --random 96 --kill-after 30 \
    --check build/demo/mobilenet.onnx
else
  echo "(not root: skipping the virtual fleet with namespaces, sshd and the board agents)"
fi
# a mismatch makes the command above fail (set -e): reaching here means every output matched
echo "demo: done in ${SECONDS} s; every output of the boards matched the Python executor bit-exactly"
