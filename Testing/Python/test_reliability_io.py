"""Issue #6, files: nothing partial under a final name, damaged inputs refused, clear causes.

A full disk is simulated without root by ``RLIMIT_FSIZE`` in a child process (writes past the limit
fail with EFBIG, as on a full file system, and ITK's NIfTI writer then only *prints* an error), and
by monkeypatching the low-level calls of :mod:`lumbarspine.safe_write` to raise ENOSPC / EACCES / EROFS.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lumbarspine import safe_write
from lumbarspine.filters import apply_filter
from lumbarspine.io import check_nifti_integrity, read_dicom_series, read_volume, write_dicom_series, write_volume
from lumbarspine.safe_write import OutputError, write_json
from lumbarspine.volume import Volume

LIBRARY = str(Path(__file__).resolve().parents[2] / "LumbarSpine")


def _volume(shape=(12, 14, 16), dtype=np.float32, seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # left-handed, permuted
    return Volume(
        (rng.random(shape) * 1000).astype(dtype), spacing=(0.4, 0.7, 3.0), origin=(10.0, -5.0, 2.5), direction=direction
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# ------------------------------------------------------------------------------- full disk (EFBIG)
_FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
    import numpy as np
    from lumbarspine.io import write_volume
    from lumbarspine.volume import Volume
    from lumbarspine.safe_write import OutputError
    v = Volume(np.random.default_rng(1).random((20, 30, 40)).astype(np.float32), spacing=(0.5, 0.5, 2.0))
    try:
        write_volume(v, sys.argv[1])
    except OutputError as exc:
        print("OUTPUTERROR", exc)
        sys.exit(3)
    print("WROTE")
    """
)


@pytest.mark.parametrize("name", ["out.nii", "out.nii.gz", "out.nrrd", "out.mha", "out.mhd", "OUT.NII.GZ"])
def test_full_disk_write_fails_cleanly_and_keeps_the_old_file(tmp_path, name):
    target = tmp_path / name
    target.write_bytes(b"previous result")  # an older file under the final name stays as it was
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(target), "20000", LIBRARY], capture_output=True, text=True
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "OUTPUTERROR Cannot write" in proc.stdout and str(target) in proc.stdout
    assert target.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no data file of a detached header either


def test_itk_short_nifti_write_is_caught_not_printed_and_ignored(tmp_path):
    """ITK prints 'NWAD: wrote only ...' and returns; the verification turns that into an error."""
    target = tmp_path / "short.nii"
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(target), "30000", LIBRARY], capture_output=True, text=True
    )
    assert proc.returncode == 3
    assert "incomplete" in proc.stdout
    assert not target.exists()


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.ENOSPC, "disk is full"),
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only"),
        (errno.EDQUOT, "quota"),
    ],
)
def test_os_errors_name_the_path_and_the_cause(tmp_path, monkeypatch, code, cause):
    def failing_fsync(path):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(safe_write, "_fsync", failing_fsync)
    target = tmp_path / "summary.json"
    with pytest.raises(OutputError, match=cause) as info:
        write_json(target, {"a": 1})
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match=cause):
        write_volume(_volume(), tmp_path / "v.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_parent_that_is_a_file_and_a_folder_as_output(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        write_volume(_volume(), blocker / "sub" / "out.nii.gz")
    with pytest.raises(OutputError, match="is a folder"):
        write_json(tmp_path, {"a": 1})
    assert blocker.read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write_volume(_volume(), folder / "out.nii.gz")
    finally:
        folder.chmod(0o755)


def test_failure_inside_the_writer_removes_the_temporary_file(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(KeyboardInterrupt):
        with safe_write.atomic_output(target) as temp:
            temp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------- damaged inputs
@pytest.fixture
def nifti_pair(tmp_path):
    vol = _volume()
    return vol, write_volume(vol, tmp_path / "good.nii.gz"), write_volume(vol, tmp_path / "good.nii")


def test_truncated_nii_gz_is_refused(nifti_pair, tmp_path):
    _, gz, _ = nifti_pair
    data = gz.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged|truncated"):
        read_volume(cut)
    # a complete gzip stream whose NIfTI payload is short: also refused
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(gzip.decompress(data)[:-1000]))
    with pytest.raises(ValueError, match="truncated: its header promises"):
        read_volume(short)


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_truncated_nii_is_refused(nifti_pair, tmp_path, dtype):
    _, _, nii = nifti_pair
    if dtype is np.int16:  # integers in a plain file are checked by the file size alone
        nii = write_volume(_volume(dtype=np.int16), tmp_path / "int.nii")
    data = nii.read_bytes()
    cut = tmp_path / "cut.nii"
    cut.write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"truncated: its header promises \d+ bytes of voxel data but only \d+"):
        read_volume(cut)
    assert check_nifti_integrity(nii)["data_bytes"] == check_nifti_integrity(nii)["expected_bytes"] - 352


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd"])
def test_nan_and_inf_survive_reading_and_are_refused_by_filters(tmp_path, suffix):
    vol = _volume()
    arr = np.array(vol.array)
    arr[1, 2, 3], arr[4, 5, 6] = np.nan, -np.inf
    path = write_volume(vol.with_array(arr), tmp_path / f"nan{suffix}")
    back = read_volume(path)
    assert int(np.isnan(back.array).sum()) == 1 and int(np.isinf(back.array).sum()) == 1
    finite = np.isfinite(arr)
    np.testing.assert_array_equal(back.array[finite], arr[finite])
    with pytest.raises(ValueError, match="NaN or infinite"):
        apply_filter(back, "gaussian", backend="numpy")


def test_upper_case_suffix_round_trip(tmp_path):
    vol = _volume()
    path = write_volume(vol, tmp_path / "SCAN.NII.GZ")
    assert path.name == "SCAN.NII.GZ" and path.read_bytes()[:2] == b"\x1f\x8b"  # compressed, as the name says
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.same_geometry(vol, atol=1e-4)


def test_unreadable_file_gives_one_clear_line(tmp_path):
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"\x5c\x01\x00\x00" + b"garbage" * 80)
    with pytest.raises(ValueError) as info:
        read_volume(bad)
    message = str(info.value)
    assert "\n" not in message and ".cxx" not in message and str(bad) in message
    junk = tmp_path / "junk.nrrd"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError) as info:
        read_volume(junk)
    assert ".cxx" not in str(info.value) and "junk.nrrd" in str(info.value)


# -------------------------------------------------------------------------------------------- DICOM
def test_dicom_series_with_a_missing_slice(tmp_path):
    rng = np.random.default_rng(0)
    array = (rng.random((8, 6, 5)) * 100).astype(np.int16)
    vol = Volume(array, spacing=(0.8, 0.8, 4.0), origin=(1.0, 2.0, 3.0))
    folder = tmp_path / "series"
    paths = write_dicom_series(vol, folder)
    assert not _leftovers(tmp_path)
    full = read_dicom_series(folder)
    assert full.spacing[2] == pytest.approx(4.0)
    paths[4].unlink()  # one slice lost in transfer
    with pytest.raises(ValueError, match=r"8 mm between slices 4 and 5 \(a slice is missing\?\).*allow_nonuniform"):
        read_volume(folder)
    fixed = read_volume(folder, allow_nonuniform=True)
    assert fixed.shape == (8, 6, 5) and fixed.spacing[2] == pytest.approx(4.0)
    np.testing.assert_allclose(fixed.array[3], array[3], atol=1e-3)
    np.testing.assert_allclose(fixed.array[4], (array[3].astype(float) + array[5]) / 2, atol=1e-3)  # interpolated
    np.testing.assert_allclose(fixed.array[7], array[7], atol=1e-3)
    np.testing.assert_allclose(fixed.origin, full.origin, atol=1e-4)


# ------------------------------------------------------------------------------- scenes and PNGs
_SCENE_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, sys.argv[3])
    import numpy as np
    from lumbarspine.scene import create_scene, save_scene
    from lumbarspine.slicer_nodes import volume_to_node
    from lumbarspine.volume import Volume
    from lumbarspine.safe_write import OutputError
    ctx = create_scene()
    rng = np.random.default_rng(0)
    volume_to_node(Volume(rng.normal(0, 1, (20, 40, 40)).astype(np.float32)), ctx.scene, name="noise")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
    try:
        save_scene(ctx, sys.argv[1])
    except OutputError as exc:
        print("OUTPUTERROR", exc)
        sys.exit(3)
    print("WROTE")
    """
)


@pytest.mark.parametrize("suffix", [".mrb", ".mrml"])
def test_scene_save_on_a_full_disk_leaves_nothing(tmp_path, suffix):
    pytest.importorskip("slicer", reason="needs slicer-core")
    target = tmp_path / f"scene{suffix}"
    proc = subprocess.run(
        [sys.executable, "-c", _SCENE_CHILD, str(target), "20000", LIBRARY], capture_output=True, text=True
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    assert "OUTPUTERROR Cannot write" in proc.stdout
    assert not target.exists() and _leftovers(tmp_path) == []
    assert [p for p in tmp_path.iterdir() if p.stat().st_size == 0] == []


def test_png_verification_rejects_a_cut_file(tmp_path):
    import vtk

    from lumbarspine.render import _verify_png

    source = vtk.vtkImageCanvasSource2D()
    source.SetExtent(0, 63, 0, 63, 0, 0)
    source.SetScalarTypeToUnsignedChar()
    source.SetNumberOfScalarComponents(3)
    source.FillBox(0, 63, 0, 63)
    source.Update()
    png = tmp_path / "ok.png"
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(png))
    writer.SetInputData(source.GetOutput())
    writer.Write()
    _verify_png(png)  # complete: accepted
    cut = tmp_path / "cut.png"
    cut.write_bytes(png.read_bytes()[:-20])
    with pytest.raises(OutputError, match="not a complete PNG"):
        _verify_png(cut)


def test_concurrent_nifti_writes_keep_stderr(tmp_path):
    """The capture of ITK's printed errors touches the process-wide fd 2: threads must leave it as it was."""
    from concurrent.futures import ThreadPoolExecutor

    before = os.fstat(2)
    vols = [_volume(seed=n) for n in range(8)]
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda nv: write_volume(nv[1], tmp_path / f"v{nv[0]}.nii.gz"), enumerate(vols)))
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    for path, vol in zip(paths, vols):
        np.testing.assert_array_equal(read_volume(path).array, vol.array)
