"""Export screws and planning volumes as STL and OBJ surfaces, in RAS or LPS, with the coordinate
system written into every file (the STL's 80-byte header, an OBJ comment) and a JSON sidecar.

Navigation systems differ: Slicer shows RAS (x to the patient's Right, y Anterior, z Superior);
DICOM / ITK and most navigation systems use LPS (x Left, y Posterior, z Superior). Coordinates are
millimetres. Volumes become surfaces by marching cubes (scikit-image) on the label map's grid, mapped
to patient coordinates through the grid's own IJK -> RAS matrix; triangles are wound so that their
normals point outward in the chosen system (a left-handed grid or the LPS flip is accounted for).
Every file is written through :mod:`lumbarspine.safe_write`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..safe_write import write_bytes, write_json, write_text
from ..volume import RAS_TO_LPS, Volume

__all__ = ["COORDINATE_SYSTEMS", "mask_surface", "polydata_surface", "write_stl", "write_obj", "export_surfaces"]

COORDINATE_SYSTEMS = ("RAS", "LPS")
_DESCRIPTION = {
    "RAS": "RAS (x to the patient's right, y anterior, z superior; Slicer's patient coordinates), millimetres",
    "LPS": "LPS (x to the patient's left, y posterior, z superior; DICOM/ITK patient coordinates), millimetres",
}


def _check_system(coordinates: str) -> str:
    system = str(coordinates).upper()
    if system not in COORDINATE_SYSTEMS:
        raise ValueError(f"Unknown coordinate system {coordinates!r}: choose RAS or LPS.")
    return system


def mask_surface(grid: Volume, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface of a boolean ``[k, j, i]`` mask: vertices ``(N, 3)`` RAS mm and outward triangles ``(M, 3)``."""
    from skimage.measure import marching_cubes

    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("The mask is empty: there is no surface to export.")
    nonzero = np.nonzero(mask)
    lo = np.array([max(int(i.min()) - 1, 0) for i in nonzero])
    hi = np.array([min(int(i.max()) + 2, n) for i, n in zip(nonzero, mask.shape)])
    crop = np.pad(mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float32), 1)
    verts_kji, faces, _, _ = marching_cubes(crop, level=0.5)
    verts_kji = verts_kji + lo[None, :] - 1.0
    verts = grid.ijk_to_ras_points(verts_kji[:, ::-1])
    # skimage's winding is inward-facing in (k, j, i) index space for a bright object; the map to RAS
    # swaps k and i (det -1) and applies the direction matrix, so on a right-handed grid the winding
    # comes out outward and on a left-handed one it must be flipped (checked by a test: signed volume > 0)
    if np.linalg.det(grid.direction) < 0:
        faces = faces[:, ::-1]
    return verts, np.ascontiguousarray(faces)


def polydata_surface(polydata: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(N, 3)`` and triangles ``(M, 3)`` of a ``vtkPolyData`` (triangulated first)."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputData(polydata)
    triangles.Update()
    out = triangles.GetOutput()
    verts = vtk_to_numpy(out.GetPoints().GetData()).astype(float)
    cells = vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return verts, cells.astype(np.int64)


def _to_system(verts_ras: np.ndarray, faces: np.ndarray, system: str) -> tuple[np.ndarray, np.ndarray]:
    if system == "LPS":
        # diag(-1, -1, 1) has determinant +1: orientation (and winding) is kept
        return verts_ras @ RAS_TO_LPS.T, faces
    return verts_ras, faces


def write_stl(path: str | os.PathLike[str], verts: np.ndarray, faces: np.ndarray, header: str) -> Path:
    """Binary STL with ``header`` (ASCII, at most 80 characters, must not start with "solid")."""
    text = header.encode("ascii", "replace")[:80]
    if text.lower().startswith(b"solid"):
        text = b"LumbarSpine " + text[:68]
    tri = verts[faces]  # (M, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    record = np.zeros(len(faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    record["n"] = normals
    record["v"] = tri
    data = text.ljust(80, b" ") + struct.pack("<I", len(faces)) + record.tobytes()
    return write_bytes(path, data)


def write_obj(path: str | os.PathLike[str], verts: np.ndarray, faces: np.ndarray, comments: list[str]) -> Path:
    """Wavefront OBJ (vertices and triangles) with ``#`` comment lines first."""
    lines = [f"# {c}" for c in comments]
    lines += [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return write_text(path, "\n".join(lines) + "\n")


def export_surfaces(
    out_dir: str | os.PathLike[str],
    objects: list[dict[str, Any]],
    *,
    coordinates: str = "RAS",
    formats: tuple[str, ...] = ("stl", "obj"),
    software_version: str = "",
) -> dict[str, Any]:
    """Write each object (``{"name", "kind", "verts_ras", "faces", ...}``) as STL and/or OBJ in
    ``coordinates`` (RAS or LPS) plus ``exports.json`` describing them; returns that sidecar's content."""
    system = _check_system(coordinates)
    out = Path(out_dir)
    files = []
    for obj in objects:
        verts, faces = _to_system(np.asarray(obj["verts_ras"], float), np.asarray(obj["faces"]), system)
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in obj["name"])
        entry: dict[str, Any] = {
            "name": obj["name"],
            "kind": obj["kind"],
            "triangles": int(len(faces)),
            "files": {},
        }
        for key in ("diameter_mm", "length_mm", "level", "volume_cm3"):
            if key in obj:
                entry[key] = obj[key]
        if "stl" in formats:
            path = write_stl(out / f"{stem}.stl", verts, faces, f"LumbarSpine {obj['name']} coordinates {system} mm")
            entry["files"]["stl"] = path.name
        if "obj" in formats:
            path = write_obj(
                out / f"{stem}.obj",
                verts,
                faces,
                [
                    f"LumbarSpine {software_version} {obj['kind']}: {obj['name']}",
                    f"coordinate system: {_DESCRIPTION[system]}",
                ],
            )
            entry["files"]["obj"] = path.name
        files.append(entry)
    sidecar = {
        "coordinate_system": system,
        "coordinate_system_description": _DESCRIPTION[system],
        "units": "mm",
        "software_version": software_version,
        "objects": files,
    }
    write_json(out / "exports.json", sidecar)
    return sidecar
