#!/usr/bin/env bash
# Set up .venv if needed, lint, check that imports go downward only (the layers contract in
# pyproject.toml), then run the test suite (2 workers, 1 thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/lint-imports --no-logo
OMP_NUM_THREADS=1 exec .venv/bin/python -m pytest -q -n 2 tests "$@"
