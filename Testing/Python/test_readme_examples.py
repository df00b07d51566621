"""The README's Python and Dask examples, run as written (issue #6: documented examples must work).

The code blocks are taken from README.md itself, so an edit that breaks an example fails here. The
Python example gets a small ``t2.nii.gz`` in a temporary working folder; the Dask example runs its
two-study cohort through the local cluster it creates (two worker processes; they import this
checkout's ``lumbarspine`` through ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from lumbarspine.filters import apply_filter
from lumbarspine.io import read_volume, write_volume
from lumbarspine.volume import Volume

REPO = Path(__file__).resolve().parents[2]


def _python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _block(marker: str) -> str:
    found = [block for block in _python_blocks() if marker in block]
    assert len(found) == 1, f"expected one README python block with {marker!r}"
    return found[0]


def test_readme_has_the_examples():
    assert len(_python_blocks()) >= 2


def test_python_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    t2 = Volume(rng.normal(100, 10, (6, 20, 18)).astype(np.float32), spacing=(0.5, 0.5, 3.0))
    write_volume(t2, "t2.nii.gz")
    exec(compile(_block("apply_filter(volume"), "README.md:python-example", "exec"), {"__name__": "__readme__"})
    assert re.match(r"(numpy|cupy) \d+\.\d+", capsys.readouterr().out)  # it prints the backend and the time
    written = read_volume("t2_smooth.nii.gz")
    expected = apply_filter(read_volume("t2.nii.gz"), "gaussian", sigma=1.0, backend="auto").volume
    np.testing.assert_allclose(written.array, expected.array, atol=1e-5)
    assert written.same_geometry(expected, atol=1e-4)


def test_dask_example(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed", reason='Dask is not installed: pip install "dask[distributed]"')
    pytest.importorskip("slicer", reason="the demo needs slicer-core")
    monkeypatch.chdir(tmp_path)
    library = str(REPO / "LumbarSpine")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [library, os.environ.get("PYTHONPATH")])))
    namespace = {"__name__": "__readme__"}
    exec(compile(_block("client.map"), "README.md:dask-example", "exec"), namespace)
    summaries = namespace["summaries"]
    assert len(summaries) == 2
    for n, summary in enumerate(summaries):
        folder = tmp_path / "cohort" / f"study_{n:03d}"
        assert Path(summary["paths"]["scene"]) == (folder / "lumbarspine_demo.mrb").resolve()
        assert (folder / "lumbarspine_demo.mrb").stat().st_size > 0
        assert summary["spec"]["seed"] == n  # each study got its own seed, not the whole list
