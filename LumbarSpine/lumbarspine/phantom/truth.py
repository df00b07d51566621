"""The ground truth (``truth.json``) of a phantom, computed analytically from the anatomy.

Every point and direction is in the same RAS frame as the image geometry (mm; x = Right,
y = Anterior, z = Superior); areas are mm2, angles degrees. :data:`FIELDS` documents each field and
is written into ``truth.json`` under ``"fields"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..labels import DISC_LABELS, EPIDURAL_FAT, SACRUM, SPINAL_CANAL, label_name
from .anatomy import (
    CANAL_SEMI_AP_MM,
    CANAL_SEMI_LATERAL_MM,
    FACET_GAP_MM,
    NORMAL_SAC_AREA_MM2,
    S1_BODY_HEIGHT_MM,
    S1_WEDGE_DEG,
    SACRAL_END_SEMI_AXES_MM,
    SACRUM_SEMI_AP_MM,
    SACRUM_SEMI_LATERAL_MM,
    STENOSIS_AP_EXPONENT,
    STENOSIS_HALF_LENGTH_MM,
    Centreline,
    Layout,
    s1_top_offset,
    sac_semi_axes,
)
from .rasterize import PEDICLE_POST_MM, SAC_END_BELOW_S1_MM, pedicle_axis, pedicle_front_length

__all__ = ["FIELDS", "build_truth", "TRUTH_FORMAT_VERSION"]

TRUTH_FORMAT_VERSION = 1

FIELDS: dict[str, str] = {
    "format_version": "Version of this truth layout (int).",
    "units": "Lengths mm, areas mm2, angles degrees; points and directions are RAS (x=Right, y=Anterior, z=Superior), "
    "the same frame as the image geometry.",
    "label_convention": "Name of the label convention of labels.nii.gz.",
    "labels": "Label value -> name for every value present in labels.nii.gz (0 = background).",
    "spec": "The PhantomSpec: seed, modality ('ct' HU int16 or 't2' float32), stenosis {level: mm2}, spacing (i,j,k) "
    "mm, orientation, margin_mm, noise (null = modality default).",
    "geometry": "Image grid: origin_ras (centre of voxel 0, mm), spacing_ijk (mm), direction (3x3 rows, columns = RAS "
    "unit vectors of i, j, k), size_ijk, right_handed (det(direction) > 0).",
    "canal": "Canal model: centreline = circular arc in the plane x=0, radius_mm, centre_of_curvature_ras, "
    "lordosis_deg (angle between the canal tangents at the L1 upper and S1 upper endplates), normal dural sac "
    "semi-axes and area, bony canal semi-axes, stenosis profile (raised cosine half-length along the arc, AP "
    "exponent), sac_end_ras (caudal end of the dural sac).",
    "levels": "Per disc level L1-L2..L5-S1.",
    "levels.*.dural_sac_area_mm2": "Dural sac (label 2) area in the plane perpendicular to the canal at the disc "
    "level (exact: pi*a*b of the sac ellipse).",
    "levels.*.plane_center_ras": "Canal centreline point at the disc level (centre of the sac ellipse).",
    "levels.*.plane_normal_ras": "Unit canal tangent at the disc level, pointing superior (normal of the plane).",
    "levels.*.ap_direction_ras": "Unit in-plane anterior direction (the sac's AP axis).",
    "levels.*.lateral_direction_ras": "Unit in-plane direction to the patient's right (the sac's lateral axis).",
    "levels.*.ap_diameter_mm": "Dural sac AP diameter in that plane (2*b).",
    "levels.*.lateral_diameter_mm": "Dural sac lateral diameter in that plane (2*a).",
    "levels.*.stenosis_requested": "True when the spec asked for a stenosis at this level.",
    "levels.*.requested_area_mm2": "The area the spec asked for (null when none).",
    "levels.*.normal_area_mm2": "Dural sac area without stenosis.",
    "levels.*.bony_canal_area_mm2": "Area of the bony canal ellipse in the plane (sac + epidural fat + any stenotic "
    "disc bulge / ligamentum flavum).",
    "levels.*.disc_label": "Label value of the disc.",
    "levels.*.disc_height_mm": "Disc height along the canal centreline (mm of arc).",
    "levels.*.disc_center_ras": "Centre of the disc (on its ellipse axis, mid-height).",
    "levels.*.arc_length_mm": "Arc length s of the level along the centreline (0 near mid L3, positive superior).",
    "levels.*.osteophytes": "True when the spec put osteophytes on this level's endplate rims (labelled as their "
    "vertebra).",
    "canal.facet_gap_mm": "Facet joint space between each inferior articular process and the superior articular "
    "process below, mm.",
    "canal.sacral_canal_end_semi_axes_mm": "The bony canal tapers linearly in the sacrum, from the lumbar semi-axes at "
    "the S1 upper endplate to these at the sacrum's lower end.",
    "vertebrae": "Per vertebra L1..L5 and S1 (the sacrum, label 50: S1 body, alae, fused lower segments; body fields "
    "plus superior_endplate_normal_ras, sacral_slope_deg, body_height_mm (posterior wall), length_mm).",
    "vertebrae.S1.superior_endplate_normal_ras": "Unit normal of the tilted S1 upper endplate (pointing up and forward).",
    "vertebrae.S1.sacral_slope_deg": "Angle between the S1 upper endplate and the horizontal (RAS axial) plane.",
    "vertebrae.S1.length_mm": "Length of the phantom's sacrum along the canal arc, mm.",
    "vertebrae.*.label": "Label value of the whole vertebra (body and posterior elements).",
    "vertebrae.*.body_center_ras": "Centre of the vertebral body.",
    "vertebrae.*.body_axis_ras": "Unit canal tangent at the body centre level (pointing superior).",
    "vertebrae.*.anterior_direction_ras": "Unit anterior direction perpendicular to body_axis_ras in the sagittal plane.",
    "vertebrae.*.superior_endplate_center_ras / inferior_endplate_center_ras": "Endplate centres on the body axis.",
    "vertebrae.*.body_height_mm": "Body height on its axis (arc through the body centre).",
    "vertebrae.*.body_depth_mm": "Body AP depth (elliptic cross-section), mm.",
    "vertebrae.*.body_width_mm": "Body lateral width, mm.",
    "vertebrae.*.anterior_cortex_ras": "Most anterior point of the body at its mid-height.",
    "vertebrae.*.canal_center_ras": "Canal centreline point at the body centre level.",
    "vertebrae.*.pedicles.{left,right}.isthmus_center_ras": "Centre of the pedicle isthmus (narrowest section).",
    "vertebrae.*.pedicles.{left,right}.isthmus_width_mm": "Narrowest pedicle width perpendicular to its axis, measured "
    "in the transverse plane (the plane perpendicular to the canal through the isthmus centre).",
    "vertebrae.*.pedicles.{left,right}.isthmus_height_mm": "Pedicle height at the isthmus (cranio-caudal), mm.",
    "vertebrae.*.pedicles.{left,right}.axis_direction_ras": "Unit pedicle axis pointing anteriorly (in the transverse "
    "plane), turned medially by medial_angle_deg.",
    "vertebrae.*.pedicles.{left,right}.medial_angle_deg": "Angle between the pedicle axis and the AP direction in the "
    "transverse plane (toward the midline).",
    "vertebrae.*.pedicles.{left,right}.transverse_direction_ras": "Unit in-plane direction across the pedicle "
    "(perpendicular to the axis, pointing laterally) along which isthmus_width_mm is measured.",
    "vertebrae.*.pedicles.{left,right}.axis_posterior_end_ras / axis_anterior_end_ras": "Where the pedicle axis leaves "
    "the pedicle posteriorly (at the lamina/facet junction) and where the pedicle tube ends inside the body.",
}


def _v(a: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in np.asarray(a, float).reshape(-1)]


def build_truth(
    spec_dict: dict[str, Any],
    layout: Layout,
    centreline: Centreline,
    stenosis: dict[str, float],
    geometry: dict[str, Any],
    labels_present: list[int],
) -> dict[str, Any]:
    """Analytic ground truth for one phantom (see :data:`FIELDS`)."""
    r = centreline.radius
    s_l1_top = layout.vertebrae[0].s_top
    truth: dict[str, Any] = {
        "format_version": TRUTH_FORMAT_VERSION,
        "units": FIELDS["units"],
        "label_convention": "TotalSpineSeg (+201 epidural fat, project-specific); label 2 is the dural sac",
        "labels": {str(v): ("dural_sac" if v == SPINAL_CANAL else label_name(v)) for v in sorted(labels_present)},
        "spec": spec_dict,
        "geometry": geometry,
        "canal": {
            "model": "circular arc in the mid-sagittal plane x=0, centre of curvature posterior",
            "radius_mm": r,
            "centre_of_curvature_ras": [0.0, -r, 0.0],
            "lordosis_deg": round(math.degrees((s_l1_top - layout.sacrum_s_top) / r), 4),
            "normal_sac_semi_axes_mm": {"lateral": 8.0, "ap": 6.5},
            "normal_sac_area_mm2": NORMAL_SAC_AREA_MM2,
            "bony_canal_semi_axes_mm": {"lateral": CANAL_SEMI_LATERAL_MM, "ap": CANAL_SEMI_AP_MM},
            "stenosis_half_length_mm": STENOSIS_HALF_LENGTH_MM,
            "stenosis_ap_exponent": STENOSIS_AP_EXPONENT,
            "sac_end_ras": _v(centreline.suw_to_ras(layout.sacrum_s_top - SAC_END_BELOW_S1_MM, 0.0, 0.0)),
            "epidural_fat_label": EPIDURAL_FAT,
            "facet_gap_mm": FACET_GAP_MM,
            "sacral_canal_end_semi_axes_mm": {"lateral": SACRAL_END_SEMI_AXES_MM[0], "ap": SACRAL_END_SEMI_AXES_MM[1]},
        },
        "levels": {},
        "vertebrae": {},
    }
    for disc in layout.discs:
        a, b = sac_semi_axes(np.array([disc.s_center]), layout, stenosis)
        a, b = float(a[0]), float(b[0])
        s = disc.s_center
        req = stenosis.get(disc.level)
        truth["levels"][disc.level] = {
            "dural_sac_area_mm2": math.pi * a * b,
            "plane_center_ras": _v(centreline.suw_to_ras(s, 0.0, 0.0)),
            "plane_normal_ras": _v(centreline.tangent(s)),
            "ap_direction_ras": _v(centreline.anterior(s)),
            "lateral_direction_ras": [1.0, 0.0, 0.0],
            "ap_diameter_mm": 2 * b,
            "lateral_diameter_mm": 2 * a,
            "stenosis_requested": req is not None,
            "requested_area_mm2": req,
            "normal_area_mm2": NORMAL_SAC_AREA_MM2,
            "bony_canal_area_mm2": math.pi * CANAL_SEMI_LATERAL_MM * CANAL_SEMI_AP_MM,
            "disc_label": DISC_LABELS[disc.level],
            "disc_height_mm": disc.height,
            "disc_center_ras": _v(centreline.suw_to_ras(s, 0.0, disc.w_center)),
            "arc_length_mm": s,
            "osteophytes": disc.level in tuple(spec_dict.get("osteophytes", ())),
        }
    for v in layout.vertebrae:
        wb = v.body_w_center
        scale = (r + wb) / r
        pedicles: dict[str, Any] = {}
        for side_name, side in (("right", 1), ("left", -1)):
            c, d, e = pedicle_axis(v, side)
            sp = v.pedicle_s
            centre, axis = centreline.plane_vectors(sp, c[0], c[1], d[0], d[1])
            _, across = centreline.plane_vectors(sp, c[0], c[1], e[0], e[1])
            post = c - PEDICLE_POST_MM * d
            front = c + pedicle_front_length(v) * d
            pedicles[side_name] = {
                "isthmus_center_ras": _v(centre),
                "isthmus_width_mm": v.pedicle_width,
                "isthmus_height_mm": v.pedicle_height * (r + v.pedicle_w) / r,
                "axis_direction_ras": _v(axis),
                "transverse_direction_ras": _v(across),
                "medial_angle_deg": v.medial_angle_deg,
                "axis_posterior_end_ras": _v(centreline.suw_to_ras(sp, post[0], post[1])),
                "axis_anterior_end_ras": _v(centreline.suw_to_ras(sp, front[0], front[1])),
            }
        truth["vertebrae"][v.name] = {
            "label": v.label,
            "body_center_ras": _v(centreline.suw_to_ras(v.s_center, 0.0, wb)),
            "body_axis_ras": _v(centreline.tangent(v.s_center)),
            "anterior_direction_ras": _v(centreline.anterior(v.s_center)),
            "superior_endplate_center_ras": _v(centreline.suw_to_ras(v.s_top, 0.0, wb)),
            "inferior_endplate_center_ras": _v(centreline.suw_to_ras(v.s_bottom, 0.0, wb)),
            "body_height_mm": v.height * scale,
            "body_depth_mm": 2 * v.body_semi_ap,
            "body_width_mm": 2 * v.body_semi_lateral,
            "anterior_cortex_ras": _v(centreline.suw_to_ras(v.s_center, 0.0, wb + v.body_semi_ap)),
            "canal_center_ras": _v(centreline.suw_to_ras(v.s_center, 0.0, 0.0)),
            "pedicles": pedicles,
        }
    wb = CANAL_SEMI_AP_MM + SACRUM_SEMI_AP_MM
    s_top = layout.sacrum_s_top - float(s1_top_offset(wb))  # the tilted endplate at the body axis (= sacrum_s_top)
    s_mid = (s_top + layout.sacrum_s_top - S1_BODY_HEIGHT_MM) / 2
    # endplate normal: the canal tangent at the S1 top turned forward by the wedge angle about the lateral axis
    tangent = centreline.tangent(layout.sacrum_s_top)
    anterior = centreline.anterior(layout.sacrum_s_top)
    wedge = math.radians(S1_WEDGE_DEG)
    normal = math.cos(wedge) * tangent + math.sin(wedge) * anterior
    slope = math.degrees(math.acos(min(1.0, abs(float(normal[2])))))
    truth["vertebrae"]["S1"] = {
        "label": SACRUM,
        "body_center_ras": _v(centreline.suw_to_ras(s_mid, 0.0, wb)),
        "body_axis_ras": _v(centreline.tangent(s_mid)),
        "anterior_direction_ras": _v(centreline.anterior(s_mid)),
        "superior_endplate_center_ras": _v(centreline.suw_to_ras(s_top, 0.0, wb)),
        "superior_endplate_normal_ras": _v(normal),
        "sacral_slope_deg": round(slope, 4),
        "body_height_mm": S1_BODY_HEIGHT_MM,
        "body_depth_mm": 2 * SACRUM_SEMI_AP_MM,
        "body_width_mm": 2 * SACRUM_SEMI_LATERAL_MM,
        "length_mm": layout.sacrum_length,
        "canal_center_ras": _v(centreline.suw_to_ras(s_mid, 0.0, 0.0)),
    }
    truth["fields"] = FIELDS
    return truth
