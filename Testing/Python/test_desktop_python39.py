"""The module files and SpineModulesLib load on the oldest supported Slicer (5.8, Python 3.9).

Three checks: every file parses under Python 3.9 grammar (``ast`` with ``feature_version=(3, 9)``); no
annotation Python evaluates at run time uses 3.10-only syntax (``X | Y`` outside postponed annotations,
anywhere in a ``@parameterNodeWrapper`` class, whose annotations Slicer evaluates); and, where a
Python 3.9 interpreter exists (``LUMBARSPINE_PYTHON39`` or pyenv's), the files compile there and the
Qt- and NumPy-free helper modules import and run there.
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "LumbarSpine"
FILES = sorted(
    [SOURCE / m / f"{m}.py" for m in ("SpineFiltering", "SpineStenosis", "SpinePlanning")]
    + list((SOURCE / "SpineModulesLib").glob("*.py"))
)
IDS = [str(p.relative_to(SOURCE)) for p in FILES]


def _python39() -> str | None:
    """A Python 3.9 interpreter that really answers 3.9 (a pyenv shim may point elsewhere)."""
    candidates = [os.environ.get("LUMBARSPINE_PYTHON39")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    candidates.append(shutil.which("python3.9"))
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.stdout.strip() == "(3, 9)":
            return candidate
    return None


PYTHON39 = _python39()


def _has_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )


def _bitor(node: ast.AST) -> list[int]:
    return [n.lineno for n in ast.walk(node) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)]


def runtime_union_offenders(tree: ast.Module) -> list[str]:
    """Places where Python 3.9 would evaluate ``X | Y`` of types at run time, whatever the annotations:
    ``isinstance`` / ``issubclass`` / ``cast`` / ``TypeVar`` arguments and module-level aliases such as
    ``Callback = Callable[...] | None``."""
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("isinstance", "issubclass", "cast", "TypeVar"):
            offenders += [f"call:{line}" for arg in node.args[1:] for line in _bitor(arg)]
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and _bitor(node.value)
            and any(isinstance(n, ast.Name) and n.id in ("None", "Optional", "Callable") for n in ast.walk(node.value))
        ):
            offenders.append(f"alias:{node.lineno}")
    return offenders


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_parses_under_python39_grammar(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_no_annotation_evaluated_at_run_time_uses_union_syntax(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _has_future_annotations(tree), "add 'from __future__ import annotations' (3.9 evaluates X | None)"
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            "parameterNodeWrapper" in ast.unparse(d) for d in node.decorator_list
        ):
            # parameterNodeWrapper evaluates its fields' annotations: Optional/Union only
            offenders += [
                f"{node.name}:{line}"
                for f in node.body
                if isinstance(f, ast.AnnAssign)
                for line in _bitor(f.annotation)
            ]
    offenders += runtime_union_offenders(tree)
    assert not offenders, offenders


def test_every_module_file_and_helper_is_checked():
    assert {p.name for p in FILES} >= {
        "SpineFiltering.py",
        "SpineStenosis.py",
        "SpinePlanning.py",
        "widget.py",
        "worker.py",
    }


@pytest.mark.skipif(PYTHON39 is None, reason="no Python 3.9 interpreter here (set LUMBARSPINE_PYTHON39)")
def test_files_compile_and_the_stdlib_only_helpers_run_on_python39(tmp_path):
    python = PYTHON39
    script = f"""
import importlib.util, sys
for path in {[str(p) for p in FILES]!r}:
    compile(open(path, encoding="utf-8").read(), path, "exec")
def load(name):  # by path: the package __init__ needs the library (NumPy), not needed here
    spec = importlib.util.spec_from_file_location(name, {str(SOURCE / "SpineModulesLib")!r} + "/" + name + ".py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
gpu = load("gpu")
assert gpu.cupy_wheel_for_driver(gpu.parse_driver_version(12040)) == "cupy-cuda12x"
assert gpu.cupy_wheel_for_driver(gpu.parse_driver_version("CUDA Version: 13.0")) == "cupy-cuda13x"
gpu.cuda_driver_version()
i18n = load("i18n")
assert i18n._("text") == "text" and i18n.translate("ctx", "text") == "text"
print("ok")
"""
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
