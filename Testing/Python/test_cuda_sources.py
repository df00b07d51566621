"""The CUDA sources of our own GPU kernels compile, and export the entry points the Python code calls.

This runs without a GPU wherever ``nvcc`` is on the PATH (it compiles to PTX for Hopper, sm_90, with
the same ``--fmad=false`` the kernels are built with at run time) and is skipped elsewhere. It checks
syntax, types and ``extern "C"`` names, not numerical results: those are the GPU parity tests'
job (``test_filters_gpu.py``), which need a CUDA device.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lumbarspine.filters import diffusion, smoothing

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not on the PATH")

SOURCES = {
    "median_radius1": (smoothing._MEDIAN_SOURCE.replace("__RADIUS__", "1"), ["median_forgetful"]),
    "median_radius2": (smoothing._MEDIAN_SOURCE.replace("__RADIUS__", "2"), ["median_forgetful"]),
    "bilateral": (smoothing._BILATERAL_SOURCE, ["bilateral"]),
    "diffusion": (diffusion._KERNEL_SOURCE, ["diffusion_step", "grad_sq"]),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_kernel_source_compiles_to_ptx(tmp_path, name):
    source, entries = SOURCES[name]
    cu = tmp_path / f"{name}.cu"
    ptx = tmp_path / f"{name}.ptx"
    cu.write_text(source)
    done = subprocess.run(
        [NVCC, "-ptx", "-arch=sm_90", "--fmad=false", "-o", str(ptx), str(cu)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = ptx.read_text()
    for entry in entries:
        assert f".entry {entry}(" in text, f'{entry} is not an extern "C" entry point of {name}'
