#!/usr/bin/env bash
# All GPU checks of a session in one command, for a machine with an NVIDIA GPU and CuPy:
#   1. the GPU parity tests (every GPU filter against its CPU twin; the anatomy's array operations,
#      cupyx.scipy.ndimage against scipy.ndimage, and the CT / T2 segmenters on CuPy against NumPy),
#   2. the filter benchmark with device time, end-to-end time, cupyx and the memory floor,
#   3. the N4 benchmark (our array N4 on CuPy and NumPy against SimpleITK's N4).
# Usage: bash scripts/gpu_checks.sh [OUT_DIR]
# The machine needs numpy, scipy, scikit-image, CuPy (e.g. cupy-cuda13x), SimpleITK and pytest; where
# SimpleITK is missing, put its wheel (matching the machine's Python) in .whl/ and it is installed first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-${OUT:-$ROOT/output/gpu}}"
mkdir -p "$OUT"
cd "$ROOT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT/LumbarSpine${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt" || true
python3 -c "from lumbarspine.backend import select_backend; print(select_backend('cupy'))" | tee -a "$OUT/gpu.txt"
status=0
python3 -m pytest -q -p no:cacheprovider Testing/Python/test_filters_gpu.py Testing/Python/test_filters_p3.py \
  Testing/Python/test_filters_cpu.py Testing/Python/test_filters_n4.py \
  Testing/Python/test_anatomy_arrays_gpu.py -rs 2>&1 | tee "$OUT/gpu_parity.log" || status=$?
python3 scripts/bench_filters.py --sizes 320x320x15,512x512x300 --repeats 20 --skip-slow \
  --out "$OUT" 2>&1 | tee "$OUT/bench.log" || status=$?
python3 scripts/bench_n4.py --backends numpy,cupy --repeats 5 --out "$OUT" 2>&1 | tee "$OUT/bench_n4.log" || status=$?
exit $status
