#!/usr/bin/env bash
# Runs the checks: ruff (lint) and the test suite with a real headless Slicer (slicer-core).
# GPU parity tests run only where a CUDA device works; elsewhere pytest reports them as skipped.
# Usage: bash scripts/test.sh [extra pytest options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LUMBARSPINE_TEST_PYTHON39="${LUMBARSPINE_TEST_PYTHON39:-1}"  # also run the library on Python 3.9
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
ruff check .
ruff format --check .
python -m pytest "$@"
