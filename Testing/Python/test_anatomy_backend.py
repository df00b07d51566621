"""The anatomy takes the project's one backend vocabulary (auto / cupy / numpy) end to end.

Regression: ``lumbarspine segment CT --backend numpy`` raised because ``segment_ct`` only knew
``auto/cpu/gpu``. Here the real segmenters run through the CLI on 2 mm phantoms (CT and T2) with
``--backend numpy`` and ``--backend auto`` and the outputs are compared. Without a CUDA device ``auto``
is NumPy and the outputs must be identical; on a GPU ``auto`` is CuPy and the same levels must be found
with near-identical labels (the GPU path is untested when this was written).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lumbarspine.anatomy.arrays import LEGACY_BACKEND_ALIASES, backend_name, resolve_backend
from lumbarspine.backend import BACKEND_CHOICES, select_backend
from lumbarspine.io import read_volume, write_volume
from lumbarspine.phantom import PhantomSpec, generate_phantom

OUTPUTS = ("labels.nii.gz", "segmentation.seg.nrrd", "anatomy.json", "segmentation.png")
AUTO = select_backend("auto")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    paths = {}
    for modality in ("ct", "t2"):
        phantom = generate_phantom(PhantomSpec(seed=1, modality=modality, spacing=(2.0, 2.0, 2.0)))
        paths[modality] = write_volume(phantom.image, root / f"{modality}.nii.gz")
    return paths


def _segment(image, out, backend, extra=()):
    from lumbarspine.cli import main

    code = main(["segment", str(image), "--out", str(out), "--backend", backend, "--quiet", *extra])
    assert code == 0
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    return read_volume(out / "labels.nii.gz").array, json.loads((out / "anatomy.json").read_text())


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


@pytest.mark.parametrize(("modality", "extra"), [("ct", ()), ("t2", ("--seed-point", "0,10,20"))])
def test_segment_cli_numpy_and_auto_agree(images, tmp_path, modality, extra):
    labels_np, summary_np = _segment(images[modality], tmp_path / "numpy", "numpy", extra)
    labels_auto, summary_auto = _segment(images[modality], tmp_path / "auto", "auto", extra)
    assert summary_np["modality"] == modality and summary_np["input"]["backend"] == "numpy"
    assert summary_auto["input"]["backend"] == AUTO.name
    names = [v["name"] for v in summary_np["vertebrae"]]
    assert names == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert [v["name"] for v in summary_auto["vertebrae"]] == names
    assert [d["name"] for d in summary_auto["discs"]] == [d["name"] for d in summary_np["discs"]]
    if AUTO.name == "numpy":
        np.testing.assert_array_equal(labels_auto, labels_np)
        for key in ("vertebrae", "discs", "numbering", "warnings"):
            assert summary_auto.get(key) == summary_np.get(key), key
    else:  # CuPy: float rounding in the filters may move a few boundary voxels
        for value in np.unique(labels_np[labels_np > 0]):
            assert _dice(labels_auto == value, labels_np == value) >= 0.95, value


def test_legacy_names_map_onto_the_vocabulary():
    assert LEGACY_BACKEND_ALIASES == {"cpu": "numpy", "gpu": "cupy"}
    assert backend_name("cpu") == "numpy" and backend_name("GPU") == "cupy"
    assert backend_name(" NumPy ") == "numpy"
    for name in BACKEND_CHOICES:
        assert backend_name(name) == name
    assert resolve_backend("cpu").name == "numpy"
    cpu = resolve_backend("numpy")
    assert resolve_backend(cpu) is cpu


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv("LUMBARSPINE_BACKEND", "cpu")
    assert backend_name(None) == "numpy"
    monkeypatch.setenv("LUMBARSPINE_BACKEND", "tpu")
    with pytest.raises(ValueError, match="LUMBARSPINE_BACKEND"):
        resolve_backend(None)


def test_bad_backend_lists_the_valid_names(images):
    from lumbarspine.anatomy.ct import segment_ct
    from lumbarspine.anatomy.segment import segment_image
    from lumbarspine.anatomy.t2 import segment_t2

    ct = read_volume(images["ct"])
    t2 = read_volume(images["t2"])
    pattern = r"Unknown backend 'quantum'.*'auto', 'cupy', 'numpy'.*'cpu' = 'numpy', 'gpu' = 'cupy'"
    for call in (
        lambda: segment_ct(ct, backend="quantum"),
        lambda: segment_t2(t2, backend="quantum"),
        lambda: segment_image(ct, backend="quantum"),
        lambda: segment_image(t2, backend="quantum"),
        lambda: segment_image(ct, backend="quantum", method="totalsegmentator"),
    ):
        with pytest.raises(ValueError, match=pattern):
            call()
    with pytest.raises(ValueError, match="name or a Backend"):
        segment_ct(ct, backend=3)  # type: ignore[arg-type]


def test_cupy_without_a_device_says_so(images):
    if AUTO.name == "cupy":
        pytest.skip("a CUDA device works here")
    from lumbarspine.anatomy.segment import segment_image
    from lumbarspine.backend import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="numpy"):
        segment_image(read_volume(images["ct"]), backend="gpu")
