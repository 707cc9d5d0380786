#!/usr/bin/env bash
# driftline and its peers (River, Evidently, scipy, numpy) side by side on
# the same stream, in one sitting: bash benches/peers/run.sh [--events N]
# [--evidently-budget-s S] [--rounds N]. The peers live in a venv of their own
# (target/peers-venv, from benches/peers/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked
venv=target/peers-venv
[ -x $venv/bin/python ] || python3 -m venv $venv
$venv/bin/python -c 'import numpy, scipy, river, evidently, pandas' 2>/dev/null \
  || $venv/bin/python -m pip install --quiet --disable-pip-version-check -r benches/peers/requirements.txt
exec $venv/bin/python benches/peers/peers.py "$@"
