"""Issue #6, property: the volume writer never leaves a partial file under the final name.

Random volumes (dtype, shape), random geometries (spacing, origin, oblique and left-handed
directions), random formats and a random failure point: none, a short write (the temporary file
cut at a random fraction after the writer returned, as ITK leaves it on a full disk), ENOSPC at the
flush, a failing rename, Ctrl-C during the verification. After any failure nothing exists under the
final name (an older file there is unchanged) and no temporary file is left; after success the file
reads back equal.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumbarspine import io as lio
from lumbarspine import safe_write
from lumbarspine.io import read_volume, write_volume
from lumbarspine.safe_write import OutputError
from lumbarspine.volume import Volume

DTYPES = (np.uint8, np.int16, np.float32, np.float64)
SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".nhdr", ".NII.GZ")
FAILURES = ("none", "short", "enospc", "rename", "interrupt")


@st.composite
def volumes(draw) -> Volume:
    shape = tuple(draw(st.integers(1, 6)) for _ in range(3))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        array = (rng.normal(0, 100, shape)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    spacing = tuple(draw(st.floats(0.1, 5.0)) for _ in range(3))
    origin = tuple(draw(st.floats(-200, 200)) for _ in range(3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # a random orthonormal (oblique) direction
    if draw(st.booleans()):
        q = np.eye(3)[:, list(draw(st.permutations([0, 1, 2])))]
    if draw(st.booleans()) != (np.linalg.det(q) < 0):
        q[:, 2] *= -1  # left- or right-handed, either way
    return Volume(array, spacing=spacing, origin=origin, direction=q)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    volume=volumes(),
    suffix=st.sampled_from(SUFFIXES),
    failure=st.sampled_from(FAILURES),
    fraction=st.floats(0.0, 0.99),
    existing=st.booleans(),
)
def test_writer_is_all_or_nothing(volume, suffix, failure, fraction, existing):
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"vol{suffix}"
        detached = suffix in (".mhd", ".nhdr")  # a header and a data file beside it
        if existing:
            target.write_bytes(b"older result")
        real_verify = lio._verify_volume_file

        def cut_then_verify(final, temp, image, sfx, nbytes):
            size = temp.stat().st_size
            with open(temp, "r+b") as fh:
                fh.truncate(int(size * fraction))
            return real_verify(final, temp, image, sfx, nbytes)

        def interrupt(*args, **kwargs):
            raise KeyboardInterrupt

        def enospc(path):
            raise OSError(errno.ENOSPC, "No space left on device")

        real_replace = os.replace

        def failing_replace(src, dst):
            if Path(dst) == target:
                raise OSError(errno.EIO, "Input/output error")
            return real_replace(src, dst)

        patches = {
            "none": [],
            "short": [mock.patch.object(lio, "_verify_volume_file", cut_then_verify)],
            "enospc": [mock.patch.object(safe_write, "_fsync", enospc)],
            "rename": [mock.patch.object(safe_write.os, "replace", failing_replace)],
            "interrupt": [mock.patch.object(lio, "_verify_volume_file", interrupt)],
        }[failure]
        for p in patches:
            p.start()
        try:
            if failure == "none":
                write_volume(volume, target)
            else:
                expected = KeyboardInterrupt if failure == "interrupt" else OutputError
                with pytest.raises(expected) as info:
                    write_volume(volume, target)
                if expected is OutputError:
                    assert str(target) in str(info.value)
        finally:
            for p in patches:
                p.stop()

        leftovers = [p.name for p in Path(folder).iterdir() if p != target]
        if failure == "none" and detached:
            assert len(leftovers) == 1 and leftovers[0].startswith("vol.")  # its data file
        else:
            assert leftovers == []
        if failure == "none":
            back = read_volume(target)
            assert back.array.dtype == volume.array.dtype
            np.testing.assert_array_equal(back.array, volume.array)
            assert back.same_geometry(volume, atol=1e-4)
        elif existing:
            assert target.read_bytes() == b"older result"
        else:
            assert not target.exists()
