"""Synthetic lumbar spine phantom with analytic ground truth (the project's test reference).

Usage::

    from lumbarspine.phantom import PhantomSpec, generate_phantom, write_phantom, parse_stenosis
    spec = PhantomSpec(seed=0, modality="ct", stenosis={"L4-L5": 60.0}, spacing=(1, 1, 1), orientation="axial")
    ph = generate_phantom(spec)     # ph.image, ph.labels (Volume), ph.truth (dict)
    write_phantom("out/", spec)     # image.nii.gz, labels.nii.gz, truth.json

Anatomy (fixed in RAS: x = Right, y = Anterior, z = Superior, mm; see :mod:`.anatomy`): L1-L5 with
vertebral bodies (elliptic cylinders, cortical shell 1.3 mm), hourglass pedicles converging medially
by 5 deg x level number, laminae, spinous and transverse processes, superior/inferior articular
processes (facet joint space 1.5 mm), optional endplate osteophytes; discs L1-L2..L5-S1 (L5-S1 a wedge); a
sacrum (label 50: wedge-shaped S1 body tilted forward, alae, fused lower segments, tapering sacral canal,
see :mod:`.rasterize`); a bony canal filled with epidural fat
(201) around the dural sac (2). Everything follows a lordotic canal: a circular arc of radius 230 mm
in the plane x = 0 (about 43 deg from the L1 to the S1 upper endplate). The dural sac is an ellipse
8 x 6.5 mm (semi-axes; 163.4 mm2) in every plane perpendicular to the canal; a requested stenosis
narrows it with a raised cosine over +-10 mm of arc to exactly the requested area at the disc level
(mostly AP), with a disc bulge in front and a thick ligamentum flavum behind.

Labels are crisp voxel-centre rasterisations (uint8, TotalSpineSeg values from
:mod:`lumbarspine.labels`). The image is CT (HU, int16) or T2 (float32), lightly blurred for partial
volume, with seeded noise (and a bias field for T2). The grid (:data:`ORIENTATIONS`, any spacing in
mm) is fitted around the phantom; only the grid turns, the anatomy stays in RAS. The dural sac is
also available as a partial-volume map (:func:`sac_fraction`: the share of each voxel inside the sac,
``write_phantom(..., sac_fraction=True)`` writes it as ``sac_fraction.nii.gz``).

``truth.json`` fields (also written into the file under ``"fields"``; all points/directions RAS mm):

* ``spec``: seed, modality, stenosis {level: mm2}, spacing (i, j, k) mm, orientation, margin_mm, noise.
* ``units``, ``label_convention``, ``labels`` (value -> name), ``format_version``.
* ``geometry``: origin_ras, spacing_ijk, direction (columns = RAS of i, j, k), size_ijk, right_handed.
* ``canal``: radius_mm, centre_of_curvature_ras, lordosis_deg, normal sac / bony canal semi-axes, normal
  sac area, stenosis profile parameters, sac_end_ras.
* ``levels[L1-L2 .. L5-S1]``: ``dural_sac_area_mm2`` (plane perpendicular to the canal, exact),
  ``plane_center_ras`` (canal centreline at the disc level), ``plane_normal_ras`` (unit tangent,
  superior), ``ap_direction_ras``, ``lateral_direction_ras``, ``ap_diameter_mm``,
  ``lateral_diameter_mm``, ``stenosis_requested``, ``requested_area_mm2``, ``normal_area_mm2``,
  ``bony_canal_area_mm2``, ``disc_label``, ``disc_height_mm``, ``disc_center_ras``, ``arc_length_mm``.
* ``vertebrae[L1 .. L5]``: ``label``, ``body_center_ras``, ``body_axis_ras``, ``anterior_direction_ras``,
  ``superior_endplate_center_ras``, ``inferior_endplate_center_ras``, ``body_height_mm``,
  ``body_depth_mm``, ``body_width_mm``, ``anterior_cortex_ras``, ``canal_center_ras`` and
  ``pedicles[left|right]``: ``isthmus_center_ras``, ``isthmus_width_mm`` (narrowest width perpendicular
  to the axis, in the transverse plane), ``isthmus_height_mm``, ``axis_direction_ras`` (unit,
  anterior), ``transverse_direction_ras``, ``medial_angle_deg``, ``axis_posterior_end_ras``,
  ``axis_anterior_end_ras``. ``vertebrae[S1]`` has the body fields only.
"""

from .anatomy import NORMAL_SAC_AREA_MM2
from .generate import Phantom, generate_phantom, save_phantom, write_phantom
from .partial_volume import sac_fraction
from .spec import MODALITIES, ORIENTATIONS, PhantomSpec, parse_stenosis
from .truth import FIELDS

__all__ = [
    "sac_fraction",
    "PhantomSpec",
    "Phantom",
    "generate_phantom",
    "write_phantom",
    "save_phantom",
    "parse_stenosis",
    "ORIENTATIONS",
    "MODALITIES",
    "NORMAL_SAC_AREA_MM2",
    "FIELDS",
]
