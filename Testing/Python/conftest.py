"""Shared pytest fixtures: the library on sys.path, the headless Slicer scene, the shared data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY_PARENT = REPO / "LumbarSpine"
if str(LIBRARY_PARENT) not in sys.path:
    sys.path.insert(0, str(LIBRARY_PARENT))

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

SHARED_DATA = Path(os.environ.get("LUMBARSPINE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def slicer_scene():
    """A fresh headless Slicer scene (skips cleanly where slicer-core is not installed)."""
    pytest.importorskip("slicer", reason="slicer-core is not installed: pip install slicer-core==5.13.31053.0")
    from lumbarspine.scene import create_scene

    ctx = create_scene()
    yield ctx
    ctx.scene.Clear(1)


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder with the real scans; skips where it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA} (set LUMBARSPINE_SHARED_DATA)")
    return SHARED_DATA
