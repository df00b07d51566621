"""The library itself runs on the oldest supported Slicer's Python (Slicer 5.8: Python 3.9).

The modules' background worker (``PythonSlicer -m SpineModulesLib.worker``) imports ``lumbarspine`` in
Slicer's own Python, so the library must be 3.9-safe too, not only the module files
(``test_desktop_python39.py``). Checks: every library file parses under Python 3.9 grammar; no
``X | Y`` is evaluated at run time (``isinstance`` arguments, module-level aliases); and, where a
Python 3.9 interpreter with NumPy, SciPy, SimpleITK and scikit-image is at hand
(``LUMBARSPINE_PYTHON39``), every library module imports there and the phantom is filtered, segmented
and graded there (Slicer-free steps: slicer-core has no 3.9 wheel).
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from test_desktop_python39 import PYTHON39, _bitor, _has_future_annotations, runtime_union_offenders

LIBRARY = Path(__file__).resolve().parents[2] / "LumbarSpine" / "lumbarspine"
FILES = sorted(LIBRARY.rglob("*.py"))
IDS = [str(p.relative_to(LIBRARY)) for p in FILES]


def _python39_with_numpy() -> str | None:
    if PYTHON39 is None:
        return None
    probe = "import numpy, scipy, SimpleITK, skimage, matplotlib, slicerio"
    done = subprocess.run([PYTHON39, "-c", probe], capture_output=True, text=True, timeout=120)
    return PYTHON39 if done.returncode == 0 else None


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_library_parses_under_python39_grammar(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_library_evaluates_no_union_syntax_at_run_time(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    offenders = []
    if not _has_future_annotations(tree):
        offenders += [
            f"annotation:{line}"
            for node in ast.walk(tree)
            if isinstance(node, (ast.AnnAssign, ast.arg, ast.FunctionDef))
            for ann in [node.returns if isinstance(node, ast.FunctionDef) else node.annotation]
            if ann is not None
            for line in _bitor(ann)
        ]
    offenders += runtime_union_offenders(tree)
    assert not offenders, offenders


def test_library_runs_on_python39(tmp_path):
    python = _python39_with_numpy()
    if python is None:
        pytest.skip(
            "no Python 3.9 with numpy, scipy, SimpleITK, scikit-image, matplotlib and slicerio here "
            "(set LUMBARSPINE_PYTHON39 to one)"
        )
    script = f"""
import importlib, pkgutil, sys
sys.path.insert(0, {str(LIBRARY.parent)!r})
import lumbarspine
for info in pkgutil.walk_packages(lumbarspine.__path__, "lumbarspine."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as error:  # Slicer's own modules and optional extras only
        if error.name.split(".")[0] not in ("slicer", "vtk", "mrml", "cupy", "cupyx", "dask", "distributed"):
            raise
from lumbarspine.anatomy.segment import segment_image
from lumbarspine.filters import apply_filter, apply_preset
from lumbarspine.grading import grade_anatomy
from lumbarspine.phantom import PhantomSpec, generate_phantom
phantom = generate_phantom(PhantomSpec(modality="t2", spacing=(1.5, 1.5, 1.5), stenosis={{"L4-L5": 60.0}}))
for name in ("gaussian", "median", "n4", "curvature_diffusion", "zscore", "bilateral", "clahe"):
    apply_filter(phantom.image, name, backend="numpy")
apply_preset(phantom.image, "t2-canal", backend="numpy")
anatomy = segment_image(phantom.image)
grades = {{level.level: level.grade for level in grade_anatomy(anatomy).levels}}
print(anatomy.numbering, grades["L4-L5"])
"""
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["sacrum", "severe"]
