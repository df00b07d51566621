#!/usr/bin/env bash
# Runs the checks: ruff (lint) and the test suite with a real headless Slicer (slicer-core).
# GPU parity tests run only where a CUDA device works; elsewhere pytest reports them as skipped.
# Usage: bash scripts/test.sh [extra pytest options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
ruff check .
ruff format --check .
python -m pytest "$@"
