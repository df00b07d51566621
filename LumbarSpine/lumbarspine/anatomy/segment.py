"""Find the spine anatomy in a scan: pick the modality, then the T2 or CT segmenter, or a deep-learning tool.

:func:`segment_image` is the entry point grading and planning use when no label map is given. With
``method="auto"`` it runs the project's own segmenters (:func:`lumbarspine.anatomy.t2.segment_t2`,
:func:`lumbarspine.anatomy.ct.segment_ct`); with ``method="totalspineseg"`` or ``"totalsegmentator"``
it runs that tool in a subprocess (when installed) and imports its label map through
:func:`~lumbarspine.anatomy.importers.load_segmentation`.

Modality rule (:func:`detect_modality`): a CT is in Hounsfield units, so the air around the body (and
the fill value outside the reconstruction circle) sits near -1000 HU and bone reaches above +200 HU.
The image is taken as **CT** when at least :data:`CT_AIR_MIN_FRACTION` of its voxels are at or below
:data:`CT_AIR_HU` *and* its 99.9th percentile is at least :data:`CT_BONE_HU`; otherwise it is taken
as **MRI**, which the project segments as T2-weighted (``"t2"``; MR intensities are arbitrary
positive units with no air at -1000). A CT cropped tightly inside the body (no air in the field of
view) fails the air test: pass ``modality="ct"`` for it. Checked on the real scans in
``shared/data``: both CTs give ``ct`` (31-32 % of voxels at <= -900 HU), the sagittal T2 and the
abdominal MR crop give ``t2`` (no voxel below -47).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backend import Backend
from ..progress import check_cancel
from ..volume import Volume, validate_scalar_volume
from .arrays import backend_name, resolve_backend
from .model import SpineAnatomy

__all__ = [
    "segment_image",
    "detect_modality",
    "DeepLearningTool",
    "DL_TOOLS",
    "tool_command",
    "tool_available",
    "run_tool",
    "CT_AIR_HU",
    "CT_AIR_MIN_FRACTION",
    "CT_BONE_HU",
    "METHODS",
]

CT_AIR_HU = -900.0
"""HU at or below which a voxel counts as air (air is about -1000 HU; fat, the lowest tissue, about -100 HU)."""
CT_AIR_MIN_FRACTION = 0.01
"""Share of voxels that must be air for an image to be taken as CT (1 %: any field of view that includes skin)."""
CT_BONE_HU = 200.0
"""99.9th percentile that a CT reaches (cancellous bone is above about +200 HU, cortical bone above +1000 HU)."""

MODALITY_CHOICES = ("auto", "t2", "ct")
METHODS = ("auto", "totalspineseg", "totalsegmentator")


def detect_modality(volume: Volume) -> str:
    """``"ct"`` or ``"t2"`` by the HU rule of the module docstring (thresholds :data:`CT_AIR_HU`, ...)."""
    validate_scalar_volume(volume, what="image")
    array = np.asarray(volume.array)
    step = max(1, int(round((array.size / 2_000_000) ** (1 / 3))))  # subsample big images for speed
    sample = array[::step, ::step, ::step].astype(np.float32)
    air = float(np.mean(sample <= CT_AIR_HU))
    high = float(np.percentile(sample, 99.9))
    return "ct" if air >= CT_AIR_MIN_FRACTION and high >= CT_BONE_HU else "t2"


def segment_image(
    volume: Volume,
    *,
    modality: str = "auto",
    seed_ras: Sequence[float] | None = None,
    backend: str | Backend | None = "auto",
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    method: str = "auto",
) -> SpineAnatomy:
    """Segment the lumbar spine in ``volume`` and return its :class:`SpineAnatomy`.

    Args:
        volume: the image (CT in HU or T2 MRI), any orientation; not modified.
        modality: ``"auto"`` (:func:`detect_modality`), ``"t2"`` or ``"ct"``.
        seed_ras: optional point in the canal (RAS mm), used by the T2 segmenter.
        backend: array backend of the segmenters' array steps and filters: ``"auto"``, ``"cupy"``,
            ``"numpy"`` (:data:`~lumbarspine.backend.BACKEND_CHOICES`; legacy ``"cpu"`` / ``"gpu"``
            are mapped), ``None`` (the ``LUMBARSPINE_BACKEND`` variable) or a
            :class:`~lumbarspine.backend.Backend`; resolved once here (:func:`.arrays.resolve_backend`).
        progress: ``progress(fraction, message)``; cancel: returns True to stop (raises ``Cancelled``).
        method: ``"auto"`` (the project's segmenters) or a deep-learning tool of :data:`DL_TOOLS`.

    Raises:
        ValueError: bad modality/method/backend, a seed point with CT, a tool that is not installed.
        BackendUnavailableError: ``backend="cupy"`` on a machine without a working CUDA device.
    """
    if modality not in MODALITY_CHOICES:
        raise ValueError(f"Unknown modality {modality!r}: use auto, t2 or ct.")
    if method not in METHODS:
        raise ValueError(f"Unknown segmentation method {method!r}: use {', '.join(METHODS)}.")
    backend_name(backend)  # a bad name fails before any work, whatever the method
    validate_scalar_volume(volume, what="image")
    if method == "auto":
        backend = resolve_backend(backend)  # probed once, for the segmenter and its filters
    report = progress or (lambda fraction, message: None)
    check_cancel(cancel)
    chosen = detect_modality(volume) if modality == "auto" else modality
    report(0.02, f"modality: {chosen}" + (" (detected)" if modality == "auto" else ""))
    if method != "auto":
        return run_tool(method, volume, modality=chosen, progress=report, cancel=cancel)
    if chosen == "t2":
        t2 = importlib.import_module("lumbarspine.anatomy.t2")
        seed = None if seed_ras is None else tuple(float(c) for c in seed_ras)
        return t2.segment_t2(volume, seed_ras=seed, backend=backend, progress=report, cancel=cancel)
    if seed_ras is not None:
        raise ValueError("A seed point is only used for T2 MRI; the CT segmenter finds the canal from the bone.")
    ct = importlib.import_module("lumbarspine.anatomy.ct")
    return ct.segment_ct(volume, backend=backend, progress=report, cancel=cancel)


# --------------------------------------------------------------------------------- deep learning
@dataclass(frozen=True)
class DeepLearningTool:
    """A deep-learning segmenter run as a command line program.

    Attributes:
        name: ``method`` value.
        executable: the command it installs.
        pip: how to install it (``pip install ...``); its model weights download on first use.
        homepage: where its documentation is.
    """

    name: str
    executable: str
    pip: str
    homepage: str


DL_TOOLS: dict[str, DeepLearningTool] = {
    "totalspineseg": DeepLearningTool(
        "totalspineseg", "totalspineseg", "totalspineseg", "https://github.com/neuropoly/totalspineseg"
    ),
    "totalsegmentator": DeepLearningTool(
        "totalsegmentator", "TotalSegmentator", "TotalSegmentator", "https://github.com/wasserth/TotalSegmentator"
    ),
}


def tool_available(method: str) -> bool:
    """True when the tool's command is on the PATH."""
    return shutil.which(DL_TOOLS[method].executable) is not None


def _install_message(tool: DeepLearningTool) -> str:
    return (
        f"{tool.name} is not installed here (no '{tool.executable}' command on the PATH). Install it with "
        f"'pip install {tool.pip}' (it needs PyTorch; its model weights download on first use, so the machine "
        f"needs internet access once), see {tool.homepage}; or segment without it (method auto)."
    )


def tool_command(
    method: str, image_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, modality: str = "ct"
) -> tuple[list[str], Path, str]:
    """The command line that runs a tool, the label map it writes, and that map's label convention.

    * TotalSpineSeg (MRI and CT): ``totalspineseg IMAGE OUT_DIR``; the final labelled map is
      ``OUT_DIR/step2_output/<image name>`` (TotalSpineSeg convention).
    * TotalSegmentator: ``TotalSegmentator -i IMAGE -o OUT_DIR/totalsegmentator.nii.gz --ml`` with
      ``--task total`` for CT (convention ``totalsegmentator``) or ``--task vertebrae_mr`` for MRI
      (convention ``totalsegmentator_vertebrae_mr``); ``--ml`` writes one multi-label file.
    """
    if method not in DL_TOOLS:
        raise ValueError(f"Unknown deep-learning tool {method!r}: use {', '.join(DL_TOOLS)}.")
    image_path = Path(image_path)
    out_dir = Path(out_dir)
    tool = DL_TOOLS[method]
    if method == "totalspineseg":
        return [tool.executable, str(image_path), str(out_dir)], out_dir / "step2_output" / image_path.name, method
    task, convention = (
        ("total", "totalsegmentator") if modality == "ct" else ("vertebrae_mr", "totalsegmentator_vertebrae_mr")
    )
    output = out_dir / "totalsegmentator.nii.gz"
    return [tool.executable, "-i", str(image_path), "-o", str(output), "--ml", "--task", task], output, convention


def run_tool(
    method: str,
    volume: Volume,
    *,
    modality: str,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    timeout_s: float = 3600.0,
) -> SpineAnatomy:
    """Run a deep-learning tool on ``volume`` in a subprocess and import its label map.

    Raises:
        ValueError: the tool is not installed, failed, or wrote no label map.
    """
    from ..io import write_volume
    from .importers import load_segmentation

    if method not in DL_TOOLS:
        raise ValueError(f"Unknown deep-learning tool {method!r}: use {', '.join(DL_TOOLS)}.")
    tool = DL_TOOLS[method]
    if not tool_available(method):
        raise ValueError(_install_message(tool))
    report = progress or (lambda fraction, message: None)
    with tempfile.TemporaryDirectory(prefix=f"lumbarspine-{method}-") as tmp:
        image_path = Path(tmp) / "image.nii.gz"
        write_volume(volume, image_path)
        command, output, convention = tool_command(method, image_path, Path(tmp) / "out", modality=modality)
        (Path(tmp) / "out").mkdir()
        report(0.05, f"running {' '.join(command)}")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip())
                if cancel is not None and cancel():
                    process.kill()
                    check_cancel(cancel)
            process.wait(timeout=timeout_s)
        finally:
            if process.poll() is None:
                process.kill()
        if process.returncode != 0:
            tail = "\n".join(lines[-10:])
            raise ValueError(f"{tool.name} failed (exit status {process.returncode}):\n{tail}")
        if not output.is_file():
            raise ValueError(f"{tool.name} finished but wrote no label map at {output}.")
        report(0.9, f"importing the {tool.name} label map ({convention} convention)")
        anatomy = load_segmentation(output, convention=convention, reference=volume, modality=modality)
    report(1.0, "done")
    return _with_source(anatomy, f"{tool.name} ({' '.join(command[:1])}); {anatomy.source}")


def _with_source(anatomy: SpineAnatomy, source: str) -> SpineAnatomy:
    from dataclasses import replace

    return replace(anatomy, source=source)
