"""GPU parity of the anatomy's array operations: CuPy (cupyx.scipy.ndimage) against NumPy (scipy.ndimage).

Needs CuPy and a working CUDA device; skipped with the reason otherwise (``scripts/gpu_checks.sh`` runs
it on a GPU machine). Written without a GPU at hand: these tests have not run on one yet, so a failure
here is news about CuPy's twin of an operation, not a known tolerance. Per operation
(``anatomy_array_cases.CASES``: random data and a CT-phantom bone mask on a 1.6 x 1.6 x 3 mm grid,
anisotropic sampling / sigmas / zoom factors) the CuPy result must equal SciPy's (binary morphology,
labelling, rank filters) or agree within the listed absolute tolerance (float filters, distance maps,
interpolation). End to end, the CT and T2 segmenters on CuPy must find the same levels as on NumPy with
near-identical labels.
"""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_array_cases import CASES, random_mask, scipy_reference

from lumbarspine.anatomy.arrays import ArrayOps, numpy_ops
from lumbarspine.backend import select_backend

_BACKEND = select_backend("auto")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_BACKEND.name != "cupy", reason=f"needs a working CUDA device with CuPy: {_BACKEND.reason}"),
]
IDS = [c[0] for c in CASES]


def _compare(out, ref, tol):  # type: ignore[no-untyped-def]
    if isinstance(ref, tuple):
        for o, r in zip(out, ref):
            _compare(o, r, tol)
        return
    if not isinstance(ref, np.ndarray):
        assert out == ref
        return
    assert isinstance(out, np.ndarray) and out.shape == ref.shape
    if tol == 0.0:
        np.testing.assert_array_equal(out, ref)
    else:
        np.testing.assert_allclose(out, ref, rtol=0.0, atol=tol, equal_nan=True)


@pytest.mark.parametrize(("case", "op", "make", "args", "kwargs", "tol"), CASES, ids=IDS)
def test_cupy_matches_scipy(case, op, make, args, kwargs, tol):
    data = make()
    out = getattr(ArrayOps(_BACKEND), op)(data, *args, **kwargs)  # host in -> host out
    ref = getattr(numpy_ops(), op)(data, *args, **kwargs)
    _compare(out, ref, tol)
    _compare(ref, scipy_reference(op, data, args, kwargs), 0.0)


def test_device_chain_matches_scipy():
    ops = ArrayOps(_BACKEND)
    mask = random_mask()
    on = ops.asarray(mask)
    dist = ops.distance_transform_edt(ops.binary_fill_holes(ops.binary_closing(on)), sampling=(2.0, 1.0, 1.0))
    assert not isinstance(dist, np.ndarray)  # stayed on the device
    ref = numpy_ops().distance_transform_edt(
        numpy_ops().binary_fill_holes(numpy_ops().binary_closing(mask)), sampling=(2.0, 1.0, 1.0)
    )
    np.testing.assert_allclose(ops.to_host(dist), ref, rtol=0.0, atol=1e-6)


def _dice(a, b):  # type: ignore[no-untyped-def]
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


@pytest.mark.parametrize("modality", ["ct", "t2"])
def test_segmenters_on_cupy_match_numpy(modality):
    from lumbarspine.anatomy.segment import segment_image
    from lumbarspine.phantom import PhantomSpec, generate_phantom

    phantom = generate_phantom(PhantomSpec(seed=1, modality=modality, spacing=(2.0, 2.0, 2.0)))
    gpu = segment_image(phantom.image, backend="cupy")
    cpu = segment_image(phantom.image, backend="numpy")
    assert [v.name for v in gpu.vertebrae] == [v.name for v in cpu.vertebrae]
    assert [d.name for d in gpu.discs] == [d.name for d in cpu.discs]
    a, b = gpu.labels.array, cpu.labels.array
    same = float(np.mean(a == b))
    print(f"{modality}: {same * 100:.4f} % of voxels carry the same label on CuPy and NumPy")
    for value in np.unique(b[b > 0]):
        assert _dice(a == value, b == value) >= 0.95, value
