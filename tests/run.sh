#!/usr/bin/env bash
# The test command (README, .ci/run): release build, the scenario acceptance
# check, then every unit, integration and doc test.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked

# numpy for ../shared/scenarios/gen_scenarios.py, in a venv of our own
if [ ! -x target/venv/bin/python ]; then
  python3 -m venv target/venv
fi
target/venv/bin/python -c 'import numpy' 2>/dev/null \
  || target/venv/bin/python -m pip install --quiet --disable-pip-version-check numpy
target/venv/bin/python tests/scenarios/check.py --check

cargo test --release --locked
