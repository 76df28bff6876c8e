#!/usr/bin/env bash
# Set up .venv if needed, lint, then run the test suite (2 workers, 1 thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks scripts
OMP_NUM_THREADS=1 exec .venv/bin/python -m pytest -q -n 2 tests "$@"
