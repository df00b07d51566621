"""Which CuPy wheel fits this machine's CUDA driver, and how to install it without touching Slicer's packages.

Qt-free and Python 3.9-safe; nothing here runs at import time. The Filtering widget calls
:func:`cuda_driver_version` and :func:`cupy_wheel_for_driver` the first time the user picks the GPU
backend, asks, and installs with :func:`SpineModulesLib.widget.installCupy`.

CuPy publishes one wheel per CUDA major version: ``cupy-cuda12x`` (CUDA 12.x) and ``cupy-cuda13x``
(CUDA 13.x) (https://docs.cupy.dev/en/stable/install.html). The driver reports the newest CUDA version
it supports (``cuDriverGetVersion``: 1000 * major + 10 * minor); a driver runs wheels built for its own
major version, so that major picks the wheel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
import sys
from typing import Dict, Optional, Tuple

CUPY_WHEELS: Dict[int, str] = {12: "cupy-cuda12x", 13: "cupy-cuda13x"}
"""CUDA driver major version -> CuPy wheel (https://docs.cupy.dev/en/stable/install.html)."""

SLICER_SHIPPED = ("numpy",)
"""Packages Slicer ships that CuPy depends on: pinned to the installed version while CuPy installs."""


def parse_driver_version(value) -> Optional[Tuple[int, int]]:
    """``(major, minor)`` from ``cuDriverGetVersion``'s integer (12040) or nvidia-smi's text ("12.4")."""
    if isinstance(value, int):
        return (value // 1000, (value % 1000) // 10) if value > 0 else None
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", str(value)) or re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(value))
    return (int(match.group(1)), int(match.group(2))) if match else None


def cupy_wheel_for_driver(version: Optional[Tuple[int, int]]) -> Optional[str]:
    """The CuPy wheel for a driver supporting CUDA ``version`` (``(major, minor)``); None if there is none.

    A driver newer than the newest wheel runs that wheel (drivers are backward compatible); a driver
    older than CUDA 12 has no current CuPy wheel (update the NVIDIA driver).
    """
    if version is None:
        return None
    major = int(version[0])
    if major in CUPY_WHEELS:
        return CUPY_WHEELS[major]
    newest = max(CUPY_WHEELS)
    return CUPY_WHEELS[newest] if major > newest else None


def _driver_version_from_library() -> Optional[Tuple[int, int]]:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", ctypes.util.find_library("cuda")]
    for name in filter(None, names):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if library.cuDriverGetVersion(ctypes.byref(version)) == 0:
            return parse_driver_version(int(version.value))
    return None


def _driver_version_from_nvidia_smi() -> Optional[Tuple[int, int]]:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        done = subprocess.run([executable], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_driver_version(done.stdout) if done.returncode == 0 else None


def cuda_driver_version() -> Optional[Tuple[int, int]]:
    """The CUDA version the installed NVIDIA driver supports (libcuda's ``cuDriverGetVersion``, else
    ``nvidia-smi``), or None where there is no NVIDIA driver (macOS, no GPU)."""
    return _driver_version_from_library() or _driver_version_from_nvidia_smi()


def cupy_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("cupy") is not None


def pip_constraints(installed: Dict[str, Optional[str]]) -> str:
    """Constraints-file text that keeps every package of :data:`SLICER_SHIPPED` at its installed version."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(installed.items()) if version)


def installed_versions(names=SLICER_SHIPPED) -> Dict[str, Optional[str]]:
    from importlib import metadata

    versions: Dict[str, Optional[str]] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
