#!/usr/bin/env bash
# Installs everything LumbarSpine needs on a fresh Debian/Ubuntu machine, idempotently:
#   - Debian's EGL/Mesa libraries for offscreen 3D rendering (apt-get, only those missing),
#   - a Python 3.11 virtual environment in .venv (slicer-core ships CPython 3.11 wheels),
#   - the library itself (editable) with slicer-core pinned, pytest and ruff.
# Sourced by scripts/demo.sh and scripts/test.sh; run it alone to prepare a machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LUMBARSPINE_VENV:-$ROOT/.venv}"
DEB_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0)

log() { printf '[lumbarspine setup] %s\n' "$*" >&2; }

install_debian_packages() {
  command -v dpkg-query >/dev/null 2>&1 || { log "not a Debian system: install EGL/Mesa (libEGL, Mesa DRI) yourself"; return 0; }
  local missing=()
  for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "need root to install: ${missing[*]}"; return 1; }
    sudo="sudo"
  fi
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  for candidate in "${LUMBARSPINE_PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && \
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  log "Python 3.11 is needed (the slicer-core wheel is built for CPython 3.11); set LUMBARSPINE_PYTHON"
  return 1
}

install_python_env() {
  local stamp="$VENV/.lumbarspine-installed"
  local want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py="$(pick_python)"
    log "creating virtual environment $VENV with $py"
    "$py" -m venv "$VENV"
  fi
  log "installing Python packages (slicer-core, SimpleITK, numpy, scipy, pytest, ruff)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[slicer,dev]"
  echo "$want" > "$stamp"
}

# Optional, for the tests only (LUMBARSPINE_TEST_PYTHON39=1, set by scripts/test.sh): where a Python 3.9
# interpreter exists (Slicer 5.8's Python), a second small environment .venv39 with the library's
# run-time dependencies, so the tests can run the library on 3.9 (Testing/Python/test_library_python39.py).
# Without a 3.9 interpreter, or when the install fails (no registry), those tests skip and say why.
install_python39_env() {
  local venv39="${LUMBARSPINE_VENV39:-$ROOT/.venv39}" py39=""
  local stamp="$venv39/.lumbarspine-installed" want="numpy<2 scipy SimpleITK scikit-image matplotlib slicerio"
  if [ -x "$venv39/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    export LUMBARSPINE_PYTHON39="$venv39/bin/python"; return 0
  fi
  for candidate in ${LUMBARSPINE_PYTHON39:-} ~/.pyenv/versions/3.9*/bin/python3.9 python3.9; do
    if command -v "$candidate" >/dev/null 2>&1 && \
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 9) else 1)' 2>/dev/null; then
      py39="$candidate"; break
    fi
  done
  [ -n "$py39" ] || { log "no Python 3.9 here: the library's Python 3.9 run is skipped"; return 0; }
  log "creating $venv39 (Python 3.9, the library's run-time dependencies) for the Python 3.9 tests"
  # shellcheck disable=SC2086
  if "$py39" -m venv "$venv39" && "$venv39/bin/python" -m pip install -q $want >/dev/null 2>&1; then
    echo "$want" > "$stamp"
    export LUMBARSPINE_PYTHON39="$venv39/bin/python"
  else
    log "could not install the Python 3.9 test environment: the library's Python 3.9 run is skipped"
  fi
}

install_debian_packages
install_python_env
if [ "${LUMBARSPINE_TEST_PYTHON39:-0}" = "1" ]; then install_python39_env; fi
export VTK_DEFAULT_OPENGL_WINDOW="${VTK_DEFAULT_OPENGL_WINDOW:-vtkEGLRenderWindow}"
export PATH="$VENV/bin:$PATH"
