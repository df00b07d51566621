"""Reading and writing volumes: NIfTI, NRRD, MetaImage and DICOM series, through SimpleITK.

Geometry is converted exactly between the files' LPS convention (ITK, DICOM, NRRD ``space``
fields as read by ITK) and :class:`~lumbarspine.volume.Volume`'s RAS convention; no resampling.

Integrity (nothing damaged is read silently, nothing partial is written):

* **NIfTI** (``.nii``, ``.nii.gz``; NIfTI-1 and -2): before ITK reads it, the header's promise
  (``vox_offset + voxels x bytes per voxel``) is compared with the data really there (the file size,
  or the decompressed length of a ``.nii.gz`` stream, which also catches a damaged gzip stream); a
  truncated file is refused. ITK's NIfTI reader turns NaN / infinite float voxels into 0 silently;
  they are restored from the file, so the NaN check of the filters fires as for the other formats.
* **DICOM series**: the slice positions along the slice normal must be evenly spaced; a missing
  slice or non-uniform spacing is refused unless ``allow_nonuniform=True``, which resamples the
  slices linearly onto an even grid at the median slice gap.
* **Writing** goes through :func:`lumbarspine.safe_write.atomic_output`: a temporary file in the
  target folder, verified (header re-read and compared with the volume, NIfTI data size checked,
  other formats read back), then renamed. ITK's NIfTI writer only prints an error on a full disk
  (``NWAD: wrote only 0 of ... bytes``); the verification turns that into an
  :class:`~lumbarspine.safe_write.OutputError`.
* Upper-case suffixes (``.NII.GZ``) are accepted for reading and writing.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .safe_write import OutputError, atomic_output, check_output_path, describe_os_error
from .volume import Volume

__all__ = [
    "read_volume",
    "read_volume_geometry",
    "write_volume",
    "read_dicom_series",
    "write_dicom_series",
    "check_nifti_integrity",
    "same_file",
    "SUPPORTED_SUFFIXES",
]

_LABEL_NAME = re.compile(r"(^|[_\-.])(seg|segmentation|label|labels|labelmap|mask)([_\-.]|$)")
"""File names taken as label maps: a ``seg``/``label``/``mask`` word, e.g. ``case_seg``, ``labels``."""

SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

_IMAGE_IO = {
    ".nii": "NiftiImageIO",
    ".nii.gz": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}

DICOM_SPACING_TOLERANCE = 0.01
"""Relative tolerance on DICOM slice gaps (1 %): larger deviations from the median gap are non-uniform."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _itk_message(exc: BaseException) -> str:
    """ITK's exception text without the C++ source location and object address: the sentence that matters."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        match = re.search(r"ERROR:\s*(?:\w+\(0x[0-9a-fA-F]+\):\s*)?(.*)", line)
        if match and match.group(1):
            return match.group(1).strip()
    last = lines[-1] if lines else text
    return re.sub(r"^.*?\.(cxx|cpp|h|hxx):\d+:\s*", "", last)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same file or folder (after resolving links; ``b`` may not exist)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


# ------------------------------------------------------------------------------------ NIfTI checks
_NIFTI_FLOAT = {16: "f4", 64: "f8", 32: "f4", 1792: "f8"}  # float32, float64, complex64/128 (as float pairs)


def _nifti_header(raw: bytes, path: Path) -> dict:
    """Parse the fields we need from a NIfTI-1 or NIfTI-2 header (``raw`` = its first 540 bytes)."""
    if len(raw) < 348:
        raise ValueError(f"The file {path} is truncated: it is shorter than a NIfTI header. Get the file again.")
    for endian in "<>":
        (size,) = struct.unpack(endian + "i", raw[:4])
        if size == 348:
            dims = struct.unpack(endian + "8h", raw[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", raw[70:74])
            (vox_offset,) = struct.unpack(endian + "f", raw[108:112])
            slope, inter = struct.unpack(endian + "2f", raw[112:120])
            magic = raw[344:348]
            if magic.startswith(b"ni1"):
                raise ValueError(f"{path} is a NIfTI header of a .hdr/.img pair; convert it to a single .nii file.")
            return {
                "endian": endian,
                "dims": dims,
                "datatype": datatype,
                "bitpix": bitpix,
                "vox_offset": int(vox_offset),
                "slope": slope,
                "inter": inter,
            }
        if size == 540:
            if len(raw) < 540:
                break
            datatype, bitpix = struct.unpack(endian + "2h", raw[12:16])
            dims = struct.unpack(endian + "8q", raw[16:80])
            (vox_offset,) = struct.unpack(endian + "q", raw[168:176])
            slope, inter = struct.unpack(endian + "2d", raw[176:192])
            return {
                "endian": endian,
                "dims": dims,
                "datatype": datatype,
                "bitpix": bitpix,
                "vox_offset": int(vox_offset),
                "slope": slope,
                "inter": inter,
            }
    raise ValueError(f"{path} is not a NIfTI file (its header size field is neither 348 nor 540). Check the file.")


def _open_nifti(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _nifti_data_bytes(header: dict) -> int:
    """Bytes of voxel data a NIfTI header promises (the product of its used dimensions x the voxel size)."""
    ndim = max(0, min(int(header["dims"][0]), 7))
    count = int(np.prod([max(int(d), 1) for d in header["dims"][1 : ndim + 1]], dtype=np.int64))
    return count * (max(int(header["bitpix"]), 8) // 8)


def check_nifti_integrity(path: str | os.PathLike[str]) -> dict:
    """Check that a NIfTI file holds all the voxel data its header promises; count non-finite floats.

    Reads the file once (decompressing a ``.nii.gz`` as a stream, in 4 MiB chunks); a plain ``.nii`` of
    integer voxels is checked by its size alone.

    Returns:
        ``{"expected_bytes", "data_bytes", "nonfinite", "header"}``.

    Raises:
        ValueError: the file is truncated, the gzip stream is damaged, or the header is not NIfTI;
            the message says what is wrong and what to do.
    """
    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    chunk = 4 << 20
    try:
        with _open_nifti(path, compressed) as fh:
            head = fh.read(540)
            header = _nifti_header(head, path)
            offset = max(header["vox_offset"], 348 if len(head) >= 348 else 0)
            expected = offset + _nifti_data_bytes(header)
            float_code = _NIFTI_FLOAT.get(int(header["datatype"]))
            dtype = np.dtype(header["endian"] + float_code) if float_code else None
            nonfinite = 0
            total = len(head)
            pending = head[offset:] if total > offset else b""
            skip = max(0, offset - total)

            def count_nonfinite(final: bool) -> None:
                # pending holds unread data bytes ending at file position `total`; only those before `expected`
                nonlocal pending, nonfinite
                usable = min(len(pending), max(0, expected - (total - len(pending))))
                usable -= usable % dtype.itemsize
                if usable:
                    values = np.frombuffer(pending[:usable], dtype=dtype)
                    nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
                pending = b"" if final else pending[usable:]

            if not compressed and dtype is None:  # integers in a plain file: the size says it all
                total = max(total, path.stat().st_size)
            while compressed or dtype is not None:
                block = fh.read(chunk)
                if not block:
                    break
                total += len(block)
                if skip:
                    cut = min(skip, len(block))
                    block = block[cut:]
                    skip -= cut
                if dtype is not None and block:
                    pending += block
                    count_nonfinite(final=False)
            if dtype is not None and pending:
                count_nonfinite(final=True)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(
            f"The file {path} is damaged: its gzip stream ends early or is corrupt ({exc}) - an interrupted "
            "download or copy? Get the file again."
        ) from exc
    except OSError as exc:
        raise ValueError(f"Cannot read {path}: {describe_os_error(exc)}.") from exc
    if total < expected:
        raise ValueError(
            f"The file {path} is truncated: its header promises {expected - offset} bytes of voxel data but only "
            f"{max(total - offset, 0)} are there (an interrupted download or copy?). Get the file again."
        )
    return {"expected_bytes": expected, "data_bytes": total - offset, "nonfinite": nonfinite, "header": header}


def _restore_nonfinite(path: Path, info: dict, array: np.ndarray) -> np.ndarray:
    """Put the NaN / infinite voxels ITK's NIfTI reader zeroed back into ``array`` ([k, j, i])."""
    header = info["header"]
    dims = [max(int(d), 1) for d in header["dims"][1:4]]
    count = dims[0] * dims[1] * dims[2]
    dtype = np.dtype(header["endian"] + _NIFTI_FLOAT[int(header["datatype"])])
    if int(header["datatype"]) not in (16, 64) or array.size != count:
        raise ValueError(
            f"{path} contains {info['nonfinite']} NaN or infinite voxel(s). Replace them first (for example with "
            "numpy.nan_to_num) or mask them out."
        )
    with _open_nifti(path, path.name.lower().endswith(".gz")) as fh:
        fh.seek(header["vox_offset"])
        raw = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype).reshape(dims[2], dims[1], dims[0])
    bad = ~np.isfinite(raw)
    out = np.array(array, dtype=np.result_type(array.dtype, np.float32), copy=True)
    out[bad] = raw[bad]
    return out


# ----------------------------------------------------------------------------------------- reading
def _readable_file_suffix(path: Path) -> str:
    """The (lower-case) suffix of an existing volume file, checked: a supported format, readable."""
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES and suffix != ".dcm":
        raise ValueError(f"Cannot read {path.name!r}: supported are {', '.join(SUPPORTED_SUFFIXES)} or a DICOM folder.")
    if not os.access(path, os.R_OK):
        raise ValueError(f"Cannot read {path}: permission denied. Check the file's permissions.")
    return suffix


def _file_reader(path: Path, suffix: str) -> Any:
    """A ``SimpleITK.ImageFileReader`` for ``path`` with this project's ImageIO for ``suffix``."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if suffix in _IMAGE_IO:
        reader.SetImageIO(_IMAGE_IO[suffix])
    return reader


def _execute(reader: Any, path: Path, suffix: str) -> Any:
    """``reader.Execute()``; ITK's error as a one-line ValueError naming the file."""
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"Cannot read {path}: {_itk_message(exc)}. Check that it is a valid {suffix} file.") from exc


def _volume_name(path: Path, suffix: str, name: str | None) -> str:
    """``name``, or the file name without its suffix."""
    return name or (path.name[: len(path.name) - len(suffix)] if suffix else path.stem)


def _looks_like_label(dtype: Any, stem: str) -> bool:
    """An integer voxel type and a ``seg`` / ``label`` / ``mask`` word in the name."""
    return np.dtype(dtype).kind in "iu" and _LABEL_NAME.search(stem.lower()) is not None


def read_volume(
    path: str | os.PathLike[str],
    *,
    is_label: bool | None = None,
    name: str | None = None,
    allow_nonuniform: bool = False,
) -> Volume:
    """Read a 3D scalar volume from a file or a DICOM series folder.

    Args:
        path: ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file (any letter case), or a
            folder holding one DICOM series.
        is_label: mark the result as a label map; ``None`` guesses from the file name
            (a ``seg``, ``label`` or ``mask`` word in it) and an integer voxel type.
        name: node name; defaults to the file name without suffix.
        allow_nonuniform: DICOM only: resample a series with a missing slice or uneven slice gaps
            onto an even grid instead of refusing it (see :func:`read_dicom_series`).

    Raises:
        ValueError: missing, unsupported, unreadable, truncated or damaged file (one line saying
            what is wrong and what to do).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise ValueError(f"No such file or folder: {path}. Check the path.")
    if path.is_dir():
        return read_dicom_series(path, name=name, allow_nonuniform=allow_nonuniform)
    suffix = _readable_file_suffix(path)
    reader = _file_reader(path, suffix)
    if suffix in (".nii", ".nii.gz") and not _nifti_looks_whole(path):
        integrity = check_nifti_integrity(path)  # raises for a truncated or damaged file
        image = _execute(reader, path, suffix)
    elif suffix in (".nii", ".nii.gz"):
        # A whole-looking file: the integrity check (it decompresses the file once more, for a damaged gzip
        # stream and the NaN count) runs beside ITK's read, both release the GIL; its verdict comes first,
        # as when they ran one after the other.
        checked: dict = {}

        def check() -> None:
            try:
                checked["info"] = check_nifti_integrity(path)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                checked["error"] = exc

        worker = threading.Thread(target=check, name="nifti-integrity", daemon=True)
        worker.start()
        try:
            image = _execute(reader, path, suffix)
            failure = None
        except ValueError as exc:
            image, failure = None, exc
        finally:
            worker.join()
        if "error" in checked:
            raise checked["error"]
        integrity = checked["info"]
        if failure is not None:
            raise failure
    else:
        integrity = None
        image = _execute(reader, path, suffix)
    _require_3d_scalar(path, image.GetDimension(), image.GetNumberOfComponentsPerPixel())
    stem = _volume_name(path, suffix, name)
    if is_label is None:
        is_label = _looks_like_label(sitk.GetArrayViewFromImage(image).dtype, stem)
    volume = Volume.from_sitk(image, is_label=bool(is_label), name=stem)
    if integrity is not None and integrity["nonfinite"]:
        volume = volume.with_array(_restore_nonfinite(path, integrity, np.asarray(volume.array)))
    return volume


def _nifti_looks_whole(path: Path) -> bool:
    """Cheap truncation check of a NIfTI file, without decompressing it: True when it holds the data
    its header promises.

    A plain ``.nii`` is compared by size with its header's promise. A ``.nii.gz`` written as one gzip
    member (ITK, nibabel, dcm2niix) stores the length of its decompressed data (mod 2**32) in its last
    four bytes: when that equals the header's promise the file is taken as whole (a truncated stream
    ends in arbitrary bytes: a chance match is one in 2**32). False for anything else (a truncated or
    unreadable file, a header that is not NIfTI, a multi-member (bgzip) ``.nii.gz``, data longer than
    promised): then :func:`check_nifti_integrity` decides and says what is wrong. A ``.nii.gz``
    damaged *inside* its gzip stream at full length is not detected here (its CRC needs a full read).
    """
    compressed = path.name.lower().endswith(".gz")
    try:
        with _open_nifti(path, compressed) as fh:
            head = fh.read(540)
        header = _nifti_header(head, path)
        expected = max(header["vox_offset"], 348) + _nifti_data_bytes(header)
        if compressed:
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                (stored,) = struct.unpack("<I", fh.read(4))
            return stored == expected % (1 << 32)
        return path.stat().st_size >= expected
    except (ValueError, EOFError, OSError, zlib.error, struct.error):
        return False


def _require_3d_scalar(path: Path, dimension: int, components: int) -> None:
    """ValueError unless the file holds a 3D scalar image (what :func:`read_volume` and
    :func:`read_volume_geometry` accept; the scalar message is :meth:`Volume.from_sitk`'s)."""
    if dimension != 3:
        raise ValueError(f"{path} holds a {dimension}D image; LumbarSpine reads 3D volumes.")
    if components != 1:
        raise ValueError(
            f"Expected a scalar image; this one has {components} components per voxel "
            "(RGB or vector). Extract one component first."
        )


def read_volume_geometry(
    path: str | os.PathLike[str],
    *,
    is_label: bool | None = None,
    name: str | None = None,
    allow_nonuniform: bool = False,
) -> Volume:
    """The grid of a volume file without its voxels: what :func:`read_volume` gives, less the data.

    Only the header is read (``SimpleITK.ImageFileReader.ReadImageInformation``), so this takes
    milliseconds where reading a 29 M-voxel float ``.nii.gz`` takes seconds. ``shape``, ``spacing``,
    ``origin`` and ``direction`` (RAS, mm) and ``is_label`` / ``name`` are exactly those of
    :func:`read_volume`. The ``array`` is a read-only **placeholder** of the file's shape and voxel
    type that holds no data (every voxel reads 0, no memory used): use the result for its geometry
    (as the reference grid of a segmentation, for frame overlaps, report fields), never for its values.

    Trade-off: the voxel data is not read, so it is not checked as :func:`read_volume` checks it. A
    truncated NIfTI file is still refused (its length is checked cheaply, see
    :func:`_nifti_looks_whole`), but a ``.nii.gz`` damaged *inside* its gzip stream (CRC error at full
    length), NaN voxels and truncated NRRD / MetaImage data are not detected here. A DICOM folder is
    read in full (its slice positions are in every file): the result then holds the real voxels.

    Args:
        path, is_label, name, allow_nonuniform: as :func:`read_volume`.

    Raises:
        ValueError: missing, unsupported, unreadable, truncated file, not 3D or not scalar (one line
            saying what is wrong and what to do).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise ValueError(f"No such file or folder: {path}. Check the path.")
    if path.is_dir():
        return read_dicom_series(path, name=name, allow_nonuniform=allow_nonuniform)
    suffix = _readable_file_suffix(path)
    if suffix in (".nii", ".nii.gz") and not _nifti_looks_whole(path):
        check_nifti_integrity(path)  # raises, naming what is wrong (or passes: e.g. a multi-member .nii.gz)
    reader = _file_reader(path, suffix)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"Cannot read {path}: {_itk_message(exc)}. Check that it is a valid {suffix} file.") from exc
    _require_3d_scalar(path, reader.GetDimension(), reader.GetNumberOfComponents())
    # the numpy type SimpleITK gives this pixel type (a 1-voxel image of it, no file data)
    dtype = sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).dtype
    stem = _volume_name(path, suffix, name)
    if is_label is None:
        is_label = _looks_like_label(dtype, stem)
    size = tuple(int(n) for n in reader.GetSize())
    placeholder = np.broadcast_to(np.zeros((), dtype=dtype), size[::-1])  # [k, j, i], read-only, no memory
    return Volume.on_itk_grid(reader, placeholder, is_label=bool(is_label), name=stem)


# ----------------------------------------------------------------------------------------- writing
def _short_write_cause(path: Path, needed: int) -> str:
    """ "the disk is full" when the target file system has less free space than ``needed`` bytes."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    if free < needed:
        return f"; the disk is full ({free / 2**20:.1f} MiB free, about {needed / 2**20:.1f} MiB needed)"
    return "; check free space, quota and permissions"


def _verify_volume_file(final: Path, temp: Path, image, suffix: str, nbytes: int) -> None:
    """Re-read what was written: header geometry equal to ``image``; data complete."""
    import SimpleITK as sitk

    if suffix in (".nii", ".nii.gz"):
        try:
            check_nifti_integrity(temp)
        except ValueError as exc:
            raise OutputError(
                f"Cannot write {final}: the written file was incomplete{_short_write_cause(final, nbytes)} "
                "(nothing was left under that name)."
            ) from exc
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(temp))
    reader.SetImageIO(_IMAGE_IO[suffix])
    try:
        if suffix in (".nii", ".nii.gz"):
            reader.ReadImageInformation()
            size, spacing, origin = reader.GetSize(), reader.GetSpacing(), reader.GetOrigin()
        else:
            back = reader.Execute()  # raises on missing / short data
            size, spacing, origin = back.GetSize(), back.GetSpacing(), back.GetOrigin()
    except RuntimeError as exc:
        raise OutputError(
            f"Cannot write {final}: the written file cannot be read back ({_itk_message(exc)})"
            f"{_short_write_cause(final, nbytes)}."
        ) from exc
    if tuple(size) != tuple(image.GetSize()):
        raise OutputError(f"Cannot write {final}: it reads back with size {tuple(size)}, not {tuple(image.GetSize())}.")
    if not np.allclose(spacing, image.GetSpacing(), rtol=1e-5, atol=1e-6) or not np.allclose(
        origin, image.GetOrigin(), rtol=1e-5, atol=1e-4
    ):
        raise OutputError(f"Cannot write {final}: its geometry reads back different from the volume's.")


def write_volume(volume: Volume, path: str | os.PathLike[str], *, compress: bool = True) -> Path:
    """Write ``volume`` to a NIfTI / NRRD / MetaImage file (format from the suffix); returns the path.

    Atomic and verified (see the module docstring): on any failure nothing is left under ``path``
    (an existing file there is kept unchanged) and :class:`~lumbarspine.safe_write.OutputError`
    names the path and the cause.
    """
    import SimpleITK as sitk

    path = Path(path)
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"Cannot write {path.name!r}: use one of {', '.join(SUPPORTED_SUFFIXES)}.")
    check_output_path(path)
    image = volume.to_sitk()
    nbytes = int(np.asarray(volume.array).nbytes)
    detached = suffix in (".mhd", ".nhdr")  # header + separate data file(s), named in the header

    moved: list[Path] = []  # detached formats: data files moved beside the final header before it is renamed

    def verify(temp: Path) -> None:
        _verify_volume_file(path, temp, image, suffix, nbytes)
        if detached:
            for item in sorted(temp.parent.iterdir()):
                if item != temp:
                    _fsync_file(item)
                    os.replace(item, path.parent / item.name)
                    moved.append(path.parent / item.name)

    printed: list[str] = []  # what ITK's C code printed to stderr while writing (e.g. "NWAD: wrote only ...")
    try:
        with atomic_output(path, verify=verify, keep_name=detached) as temp:
            writer = sitk.ImageFileWriter()
            writer.SetFileName(str(temp))
            writer.SetImageIO(_IMAGE_IO[suffix])
            writer.SetUseCompression(bool(compress))
            try:
                if suffix in (".nii", ".nii.gz"):  # the NIfTI library prints its write errors and returns
                    with _captured_stderr(printed):
                        writer.Execute(image)
                else:
                    writer.Execute(image)
            except RuntimeError as exc:
                message = _itk_message(exc).replace(str(temp), str(path)).replace(temp.name, path.name)
                raise OutputError(f"Cannot write {path}: {message}{_short_write_cause(path, nbytes)}.") from exc
    except OutputError as exc:
        for item in moved:  # the header never made it: its data files go too
            item.unlink(missing_ok=True)
        note = " ".join(" ".join(printed).replace("** ERROR:", "").split())
        if note:
            raise OutputError(f"{exc} ITK reported: {note}") from exc
        raise
    except BaseException:
        for item in moved:
            item.unlink(missing_ok=True)
        raise
    if printed and printed[0].strip():  # a success with messages: pass them on, nothing is hidden
        sys.stderr.write(printed[0])
    return path


_STDERR_LOCK = threading.Lock()
"""File descriptor 2 is process-wide: one capture at a time (threads writing NIfTI files take turns)."""


@contextlib.contextmanager
def _captured_stderr(into: list[str]):
    """Capture what C/C++ code writes to file descriptor 2 (ITK's NIfTI library prints its write errors
    there and returns) into ``into``; restored afterwards. Without a usable fd 2 or temporary file: no capture."""
    with _STDERR_LOCK:
        try:
            sink = tempfile.TemporaryFile()
        except OSError:
            yield
            return
        with sink:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):
                yield
                return
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                try:
                    sink.seek(0)
                    into.append(sink.read(65536).decode("utf-8", errors="replace"))
                except OSError:
                    pass


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------------ DICOM
def _slice_geometry(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the slices along their normal (mm, LPS) and the normal, from each file's header."""
    import SimpleITK as sitk

    positions, normal = [], None
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.LoadPrivateTagsOff()
        reader.ReadImageInformation()
        try:
            ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
            iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
        except RuntimeError:
            ipp = list(reader.GetOrigin())
            d = reader.GetDirection()
            iop = [d[0], d[3], d[6], d[1], d[4], d[7]]
        if normal is None:
            normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:6]))
            normal /= np.linalg.norm(normal) or 1.0
        positions.append(float(np.dot(ipp, normal)))
    return np.asarray(positions), np.asarray(normal)


def read_dicom_series(
    folder: str | os.PathLike[str],
    *,
    series_id: str | None = None,
    name: str | None = None,
    allow_nonuniform: bool = False,
) -> Volume:
    """Read one DICOM series from ``folder`` (the first series found unless ``series_id`` is given).

    The slices must be evenly spaced along their normal (within :data:`DICOM_SPACING_TOLERANCE`):
    a missing slice or uneven gaps raise ``ValueError`` saying where, unless ``allow_nonuniform``,
    which resamples the slices linearly (along the normal) onto an even grid at the median gap,
    covering the first to the last slice.
    """
    import SimpleITK as sitk

    folder = Path(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    if not ids:
        raise ValueError(f"No DICOM series found in {folder}. Point to the folder holding the .dcm files.")
    chosen = series_id or ids[0]
    if chosen not in ids:
        raise ValueError(f"DICOM series {chosen!r} is not in {folder}; found {', '.join(ids)}.")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), chosen))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"Cannot read the DICOM series in {folder}: {_itk_message(exc)}.") from exc
    volume = Volume.from_sitk(image, name=name or folder.name)
    if len(files) < 3:
        return volume
    positions, _ = _slice_geometry(files)
    t = positions - positions[0]  # file order = ITK's k order (GDCM sorts along the normal)
    if t[-1] < 0:
        t = -t
    gaps = np.diff(t)
    median = float(np.median(gaps))
    if median <= 0 or np.any(gaps <= 0):
        raise ValueError(
            f"The DICOM series in {folder} has slices at the same position or out of order; remove the duplicates "
            "or read the series with a DICOM tool that sorts it."
        )
    bad = np.flatnonzero(np.abs(gaps - median) > DICOM_SPACING_TOLERANCE * median)
    if bad.size == 0:
        return volume
    where = ", ".join(f"{gaps[b]:.3g} mm between slices {b + 1} and {b + 2}" for b in bad[:3])
    if not allow_nonuniform:
        missing = " (a slice is missing?)" if np.any(gaps[bad] > 1.5 * median) else ""
        raise ValueError(
            f"The DICOM series in {folder} has uneven slice spacing: the gap is {median:.3g} mm except {where}"
            f"{missing}. Get the complete series, or read it with allow_nonuniform=True (CLI: --allow-nonuniform) "
            f"to resample it onto an even {median:.3g} mm grid."
        )
    return _resample_slices(volume, t, median)


def _resample_slices(volume: Volume, t: np.ndarray, gap: float) -> Volume:
    """Linear interpolation of the slices at increasing positions ``t`` (mm from slice 0) onto ``n * gap``.

    Origin and direction stay those of slice 0 and the series' k axis; the k spacing becomes ``gap``.
    """
    stack = np.asarray(volume.array)
    n = int(np.floor(t[-1] / gap + 1e-6)) + 1
    target = gap * np.arange(n)
    hi = np.clip(np.searchsorted(t, target, side="right"), 1, len(t) - 1)
    lo = hi - 1
    w = np.clip((target - t[lo]) / np.maximum(t[hi] - t[lo], 1e-12), 0.0, 1.0).astype(np.float32)[:, None, None]
    out = stack[lo].astype(np.float32) * (1 - w) + stack[hi].astype(np.float32) * w
    return Volume(
        array=out,
        spacing=(volume.spacing[0], volume.spacing[1], gap),
        origin=volume.origin,
        direction=volume.direction,
        is_label=False,
        name=volume.name,
    )


def write_dicom_series(
    volume: Volume, folder: str | os.PathLike[str], *, series_description: str = "LumbarSpine"
) -> list[Path]:
    """Write ``volume`` as a DICOM series (one file per k slice; int16 voxels, rescale 1/0).

    Meant for tests and demos (it writes a minimal CT-like header: position, orientation and
    spacing per slice), not for clinical export. The slices are written into a temporary folder
    beside ``folder`` and moved in only when all of them are written (a new ``folder`` appears
    whole, by one rename); on failure nothing is left and ``OutputError`` says why.
    """
    import time

    import SimpleITK as sitk

    folder = Path(folder)
    check_output_path(folder / "slice_0000.dcm")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create {folder.parent}: {describe_os_error(exc)}.") from exc
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmpdir"
    image = volume.to_sitk()
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125." + time.strftime("%Y%m%d%H%M%S") + f".{os.getpid()}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    names = []
    try:
        staging.mkdir()
        for k in range(image.GetDepth()):
            slice_image = image[:, :, k]
            position = image.TransformIndexToPhysicalPoint((0, 0, k))
            tags = {
                "0008|0060": "CT",
                "0008|103e": series_description,
                "0020|000e": series_uid,
                "0020|000d": series_uid + ".1",
                "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{p:.6f}" for p in position),
                "0020|0037": "\\".join(
                    f"{d:.8f}"
                    for d in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])
                ),
                "0018|0050": f"{image.GetSpacing()[2]:.6f}",
                "0028|1053": "1",
                "0028|1052": "0",
                "0008|0018": series_uid + f".2.{k + 1}",
            }
            for key, value in tags.items():
                slice_image.SetMetaData(key, value)
            out = staging / f"slice_{k:04d}.dcm"
            writer.SetFileName(str(out))
            try:
                writer.Execute(slice_image)
            except RuntimeError as exc:
                raise OutputError(f"Cannot write {folder / out.name}: {_itk_message(exc)}.") from exc
            if not out.is_file() or out.stat().st_size == 0:
                raise OutputError(f"Cannot write {folder / out.name}: nothing was stored (disk full?).")
            names.append(out.name)
        for name_ in names:
            with open(staging / name_, "rb") as fh:
                os.fsync(fh.fileno())
        if not folder.exists():
            os.replace(staging, folder)
        else:
            for name_ in names:
                os.replace(staging / name_, folder / name_)
    except OSError as exc:
        raise OutputError(f"Cannot write the DICOM series {folder}: {describe_os_error(exc)}.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / name_ for name_ in names]
