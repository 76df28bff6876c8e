#!/usr/bin/env bash
# Set up .venv if needed, then run the demo (extra arguments go to `hydraplus demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hydraplus demo "$@"
