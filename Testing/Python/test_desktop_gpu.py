"""GPU on first use: which CuPy wheel fits the CUDA driver, and what is pinned while it installs (Qt-free)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from SpineModulesLib import gpu


@pytest.mark.parametrize(
    "reported,version",
    [
        (12040, (12, 4)),
        (13000, (13, 0)),
        (11080, (11, 8)),
        (0, None),
        ("| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |", (12, 4)),
        ("CUDA Version: 13.1", (13, 1)),
        ("12.8", (12, 8)),
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", None),
    ],
)
def test_driver_version_from_libcuda_or_nvidia_smi(reported, version):
    assert gpu.parse_driver_version(reported) == version


@pytest.mark.parametrize(
    "version,wheel",
    [
        ((12, 0), "cupy-cuda12x"),
        ((12, 9), "cupy-cuda12x"),
        ((13, 0), "cupy-cuda13x"),
        ((14, 2), "cupy-cuda13x"),
        ((11, 8), None),
        (None, None),
    ],
)
def test_wheel_follows_the_driver_major_version(version, wheel):
    assert gpu.cupy_wheel_for_driver(version) == wheel


def test_slicer_shipped_packages_are_pinned_to_their_installed_versions():
    versions = gpu.installed_versions()
    assert versions["numpy"] == np.__version__
    assert gpu.pip_constraints(versions) == f"numpy=={np.__version__}\n"
    assert gpu.pip_constraints({"numpy": None}) == ""
    assert "cupy" not in " ".join(gpu.SLICER_SHIPPED)


def test_this_machine_is_detected_without_errors():
    """Where there is no NVIDIA driver the answer is None (the filters then run on the CPU)."""
    version = gpu.cuda_driver_version()
    assert version is None or (isinstance(version, tuple) and version[0] >= 1)
    assert gpu.cupy_importable() == (importlib.util.find_spec("cupy") is not None)


def test_nothing_is_installed_at_import_time():
    import ast
    from pathlib import Path

    for name in ("gpu.py", "widget.py", "__init__.py"):
        tree = ast.parse((Path(gpu.__file__).parent / name).read_text())
        top_level_calls = [
            ast.unparse(n) for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
        ]
        assert not top_level_calls, (name, top_level_calls)
