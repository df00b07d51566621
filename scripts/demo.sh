#!/usr/bin/env bash
# The main job end to end on the built-in default input: synthetic lumbar phantom -> a filter chain
# -> a Slicer scene (.mrb), the label map and a 3D screenshot (PNG) in an output folder.
# Usage: bash scripts/demo.sh [OUTPUT_DIR] [extra 'lumbarspine demo' options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
OUT="${1:-$ROOT/output/demo}"
shift || true
exec lumbarspine demo --out "$OUT" "$@"
