#!/usr/bin/env bash
# Create .venv if it is missing and (re)install hydraplus with its test extras when
# pyproject.toml changed since the last install. Needs only Python >= 3.10 with pip and venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/pip install --quiet -e ".[test]"
    touch .venv/.installed
fi
