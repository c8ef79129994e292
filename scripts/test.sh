#!/usr/bin/env bash
# The test command of README and .ci/run: set up, lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# FINN v0.10.1 in its own venv: tests/finn/test_finn_flow.py runs FINN's flow on real bundles (docs/finn.md)
bash scripts/setup-finn.sh
.venv/bin/ruff check .
# Two workers (the machine's 2 cores; most tests wait on processes and sockets), a test file per
# worker so module fixtures are built once; FINNSPLIT_TEST_WORKERS=0 runs in this process.
.venv/bin/python -m pytest -q -n "${FINNSPLIT_TEST_WORKERS:-2}" --dist loadfile "$@"
