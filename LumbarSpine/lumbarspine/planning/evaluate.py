"""Evaluate any screw trajectory: breach outside the bone, Gertzbein-Robbins grade, distance to the
neural elements and to the no-go zone.

The screw is a cylinder of the given diameter from ``entry`` to ``tip`` (RAS mm). Its **surface** is
sampled (rings every :data:`RING_STEP_MM` along the axis, :data:`RING_POINTS` points around each),
not its axis, and each point is looked up in the signed distance map (mm) of the vertebra's label
(:mod:`lumbarspine.planning.distance`: RAS -> continuous IJK through the grid's own matrix,
trilinear, spacing-aware). The breach is the largest distance of a counted surface point outside
the bone. Grades after Gertzbein & Robbins (``shared/docs/clinical-reference.md``): A 0 mm, B < 2 mm,
C 2 to < 4 mm, D 4 to < 6 mm, E >= 6 mm *outside the pedicle cortex*; A and B are counted acceptable.

**Entry** (:func:`counted_surface`): a Gertzbein-Robbins breach is the screw leaving the bone after it
has entered it; the screw *enters* the bone through the dorsal cortex at its entry point (the classic
entry points, Roy-Camille, Magerl, Weinstein, are points on that surface: on the facet and at the
transverse process' root, clinical-reference.md). So the part of the screw still behind that surface is
not a breach: (1) nothing before the screw's axis first enters the bone (the head side; an entry point
set on or just off the bone surface does not breach by that), and (2) a cylinder of radius r whose axis
crosses the dorsal surface obliquely crosses it along a stretch of its length: each line of its surface
(a generatrix) that reaches the bone within :data:`ENTRY_ZONE_RADII` x r past the axis' bone entry is
still entering there, not breaching, and counts from where it first reaches the bone. Once a surface
line is in bone every later point of it counts, and a line still outside the bone at the end of that
entry zone counts from there on: a screw leaving the pedicle cortex (medial, lateral, superior,
inferior) after its entry, or a screw beside the pedicle, is graded by it (a screw moved 4 mm laterally
breaches as much as without this rule, tests). Without it a screw from a classic entry point graded B/C
from the first 0.5-2.5 mm of its surface alone (phantom CT segmentation, all three classic entry points).

Distance to the dural sac: the smallest distance from the screw's surface to the neural elements
(cord 1, dural sac 2), from their signed distance map; 0 when the screw touches or enters them.
Distance to the no-go zone = that distance minus the zone's margin (the zone *is* the neural
elements grown by the margin, :func:`lumbarspine.planning.no_go.no_go_zone`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..anatomy.model import SpineAnatomy
from ..volume import Volume
from .distance import DistanceMap, signed_distance_map
from .no_go import DEFAULT_MARGIN_MM, NEURAL_LABELS
from .refine import RefinedBone, refined_bone, refines

__all__ = [
    "GR_LIMITS_MM",
    "gertzbein_robbins",
    "evaluate_screw",
    "evaluate_line_markup",
    "observe_line_markup",
    "PlanningMaps",
    "screw_surface_points",
    "ring_directions",
    "RING_STEP_MM",
    "RING_POINTS",
    "ENTRY_ZONE_RADII",
    "counted_surface",
]

GR_LIMITS_MM: tuple[tuple[str, float], ...] = (("B", 2.0), ("C", 4.0), ("D", 6.0))
"""Gertzbein-Robbins upper limits (mm, exclusive): breach 0 -> A, < 2 -> B, < 4 -> C, < 6 -> D, else E
(Gertzbein & Robbins 1990; ``shared/docs/clinical-reference.md``)."""

ACCEPTABLE_GRADES = ("A", "B")
"""Grades counted acceptable (clinical-reference.md)."""

RING_STEP_MM = 0.5
"""Spacing (mm) of the sampled rings along the screw axis."""
RING_POINTS = 24
"""Points sampled around each ring of the screw surface."""

ENTRY_ZONE_RADII = 1.75
"""Length of the entry zone past the axis' bone entry, in screw radii (see the module docstring): a cylinder of
radius r whose axis meets a plane bone surface at an angle a from the surface normal has crossed it within
r * tan(a) of where its axis did; 1.75 r covers surfaces up to 60 deg oblique (tan 60 deg = 1.73), e.g. 5.7 mm
for a 6.5 mm screw. Measured on the phantom's CT segmentation (1.5 mm axial, classic entry points on the facet):
the screws planned before this rule had surface outside the bone only within 2.5 mm (1.0 r) past the axis' entry
(grades B/C); with it, planned screws (axial, oblique, 0.8 x 0.8 x 2.5 mm) have their last surface line entering
the bone 0.7-1.5 r past the axis' entry (Weinstein's corner the most oblique)."""

NEURAL_MAP_MARGIN_MM = 40.0
"""Distances to the neural elements are exact up to this far (mm); beyond it they read as at least this."""

# Node attributes written on a screw's line markup (read back by the Slicer module).
ATTR_DIAMETER = "LumbarSpine.DiameterMm"
ATTR_VERTEBRA = "LumbarSpine.Vertebra"
ATTR_SIDE = "LumbarSpine.Side"
ATTR_BREACH = "LumbarSpine.BreachMm"
ATTR_GRADE = "LumbarSpine.GertzbeinRobbins"
ATTR_SAC = "LumbarSpine.MinDistanceToDuralSacMm"
MODEL_REFERENCE_ROLE = "LumbarSpine.ScrewModel"


def gertzbein_robbins(breach_mm: float) -> str:
    """Gertzbein-Robbins grade of a breach in mm (:data:`GR_LIMITS_MM`): ``"A"`` only for 0 mm."""
    breach = float(breach_mm)
    if not np.isfinite(breach) or breach < 0:
        raise ValueError(f"A breach is a distance of 0 mm or more; got {breach_mm!r}.")
    if breach == 0.0:
        return "A"
    for grade, limit in GR_LIMITS_MM:
        if breach < limit:
            return grade
    return "E"


@dataclass(eq=False)
class PlanningMaps:
    """Distance maps of one anatomy, computed on first use and kept for the next screw.

    Pass one instance to several :func:`evaluate_screw` calls (the planner does); it holds no global
    state and may be dropped any time.

    With ``image`` (the CT in HU) and a label map coarser than
    :data:`lumbarspine.planning.refine.REFINE_ABOVE_SPACING_MM`, each vertebra's bone is the label refined
    by the CT's HU on a finer working grid (:mod:`lumbarspine.planning.refine`): planning and the breach
    are then measured on that bone, and :func:`evaluate_screw` also reports the share of the screw's
    surface in the CT's own bone (``surface_in_hu_bone_fraction``). Without an image: the labels alone.
    """

    anatomy: SpineAnatomy
    neural_labels: tuple[int, ...] = NEURAL_LABELS
    image: Volume | None = None
    _bone: dict[int, DistanceMap] = field(default_factory=dict)
    _refined: dict[int, RefinedBone] = field(default_factory=dict)
    _neural: DistanceMap | None = None
    _neural_done: bool = False

    @property
    def refined(self) -> bool:
        """True when the bone is refined by the image's HU (see the class docstring)."""
        return refines(self.anatomy.labels, self.image)

    def refined_bone(self, label: int) -> RefinedBone | None:
        """The refined bone of vertebra ``label`` (None when :attr:`refined` is False)."""
        if not self.refined:
            return None
        if label not in self._refined:
            if not (np.asarray(self.anatomy.labels.array) == label).any():
                raise ValueError(f"Label {label} is not in the label map: no such vertebra to evaluate against.")
            assert self.image is not None
            bone_labels = tuple(int(v.label) for v in self.anatomy.vertebrae)
            self._refined[label] = refined_bone(self.anatomy.labels, label, self.image, bone_labels)
        return self._refined[label]

    def bone(self, label: int) -> DistanceMap:
        """Signed distance map (mm) of vertebra ``label`` (refined by the HU when :attr:`refined`)."""
        if label not in self._bone:
            refined = self.refined_bone(label)
            if refined is not None:
                self._bone[label] = refined.sdf
                return self._bone[label]
            mask = np.asarray(self.anatomy.labels.array) == label
            if not mask.any():
                raise ValueError(f"Label {label} is not in the label map: no such vertebra to evaluate against.")
            self._bone[label] = signed_distance_map(self.anatomy.labels, mask)
        return self._bone[label]

    def set_bone(self, label: int, sdf: DistanceMap) -> None:
        """Reuse a map computed elsewhere (the vertebra frame's)."""
        self._bone[label] = sdf

    def neural(self) -> DistanceMap | None:
        """Signed distance map (mm) of the neural elements, or None when none is labelled."""
        if not self._neural_done:
            mask = np.isin(np.asarray(self.anatomy.labels.array), np.asarray(self.neural_labels))
            self._neural = signed_distance_map(self.anatomy.labels, mask, NEURAL_MAP_MARGIN_MM) if mask.any() else None
            self._neural_done = True
        return self._neural


def _perpendicular_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(direction, e1)


def ring_directions(direction: np.ndarray, n: int = RING_POINTS) -> np.ndarray:
    """``(n, 3)`` unit vectors perpendicular to the unit ``direction``, evenly around it: the angles at which the
    screw's surface is sampled (:func:`screw_surface_points`, and the planner's ring checks)."""
    e1, e2 = _perpendicular_basis(direction)
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.cos(theta)[:, None] * e1[None, :] + np.sin(theta)[:, None] * e2[None, :]


def screw_surface_points(
    entry_ras: np.ndarray, tip_ras: np.ndarray, diameter_mm: float, step_mm: float = RING_STEP_MM, n: int = RING_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the screw's cylindrical surface: ``(rings, n, 3)`` RAS mm, and the axis points ``(rings, 3)``."""
    entry = np.asarray(entry_ras, float).reshape(3)
    tip = np.asarray(tip_ras, float).reshape(3)
    axis = tip - entry
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        raise ValueError("The screw's entry and tip are the same point: give two different points.")
    direction = axis / length
    t = np.linspace(0.0, length, max(int(np.ceil(length / step_mm)) + 1, 2))
    ring = ring_directions(direction, n)
    centres = entry[None, :] + t[:, None] * direction[None, :]
    surface = centres[:, None, :] + 0.5 * float(diameter_mm) * ring[None, :, :]
    return surface, centres


def _which_vertebra(anatomy: SpineAnatomy, centres: np.ndarray) -> Any:
    known = {v.label: v for v in anatomy.vertebrae}
    if not known:
        raise ValueError("The anatomy has no vertebra to evaluate a screw against.")
    values = anatomy.labels.sample_nearest_ras(centres)
    hits = [int(v) for v in values if int(v) in known]
    if hits:
        label = max(set(hits), key=hits.count)
        return known[label]
    middle = centres[len(centres) // 2]
    return min(known.values(), key=lambda v: float(np.linalg.norm(np.asarray(v.centroid_ras) - middle)))


def counted_surface(
    surface_depth: np.ndarray, axis_depth: np.ndarray, ring_t_mm: np.ndarray, radius_mm: float
) -> tuple[np.ndarray, float | None]:
    """Which sampled surface points of a screw count for its breach (the module docstring's **Entry** rule).

    Args:
        surface_depth: ``(rings, n)`` signed distance (mm, positive in bone) of the surface points; column
            ``j`` is one line of the surface (a generatrix), rows run from the entry to the tip.
        axis_depth: ``(rings,)`` signed distance (mm) of the axis points.
        ring_t_mm: ``(rings,)`` distance (mm) of each ring from the entry point along the axis (increasing).
        radius_mm: the screw's radius (mm).

    Returns:
        ``(mask, bone_entry_mm)``: ``mask`` ``(rings, n)`` True where the point counts; ``bone_entry_mm`` the
        ``ring_t_mm`` of the first ring whose axis point is in bone (None when none is: then every point counts).
    """
    depth = np.asarray(surface_depth, float)
    axis = np.asarray(axis_depth, float)
    t = np.asarray(ring_t_mm, float)
    entered = np.flatnonzero(axis > 0)
    if entered.size == 0:
        return np.ones(depth.shape, dtype=bool), None
    first = int(entered[0])
    t_in = float(t[first])
    rows = np.arange(depth.shape[0])[:, None]
    # the entry zone: rings from the axis' entry up to ENTRY_ZONE_RADII radii past it
    zone_end = int(np.searchsorted(t, t_in + ENTRY_ZONE_RADII * float(radius_mm), side="right"))
    in_bone = (depth >= 0) & (rows >= first) & (rows < zone_end)
    # each surface line counts from its first point in bone inside the zone, else from the zone's end
    start = np.where(in_bone.any(axis=0), np.argmax(in_bone, axis=0), min(zone_end, depth.shape[0] - 1))
    return rows >= start[None, :], t_in


def evaluate_screw(
    anatomy: SpineAnatomy,
    entry_ras: Any,
    tip_ras: Any,
    diameter_mm: float,
    *,
    vertebra: str | None = None,
    no_go_margin_mm: float = DEFAULT_MARGIN_MM,
    maps: PlanningMaps | None = None,
) -> dict[str, Any]:
    """Breach, Gertzbein-Robbins grade and distances to the neural elements of one screw.

    Args:
        anatomy: the spine (its label map holds the vertebrae and the dural sac).
        entry_ras, tip_ras: the screw's ends (RAS mm, Slicer's patient coordinates).
        diameter_mm: outer thread diameter (mm), 1 to 15.
        vertebra: name of the vertebra the screw is meant for (default: the one most of its axis
            passes through).
        no_go_margin_mm: margin of the no-go zone (mm, :data:`lumbarspine.planning.no_go.DEFAULT_MARGIN_MM`).
        maps: cached distance maps (:class:`PlanningMaps`) to reuse between screws.

    Returns:
        ``vertebra``, ``length_mm``, ``diameter_mm``, ``breach_mm`` (largest distance of the screw's
        surface outside the bone, mm), ``gertzbein_robbins``, ``acceptable`` (A or B),
        ``surface_in_bone_fraction`` (share of the counted surface in bone), ``bone_entry_mm`` (mm along the axis
        from ``entry_ras`` to where the axis enters the bone, None when it never does; the surface counted is
        :func:`counted_surface`'s), ``min_distance_to_dural_sac_mm`` (None without a sac label),
        with a refining CT in ``maps`` also ``surface_in_hu_bone_fraction`` (share of the counted surface in
        the CT's own bone, :func:`lumbarspine.planning.refine.hu_bone_mask`) and ``bone``,
        ``min_distance_to_no_go_zone_mm``, ``enters_no_go_zone``, ``enters_dural_sac``.

    Raises:
        ValueError: equal end points, a diameter out of range, an unknown vertebra name.
    """
    if not isinstance(anatomy, SpineAnatomy):
        raise ValueError(f"evaluate_screw needs a SpineAnatomy; got {type(anatomy).__name__}.")
    diameter = float(diameter_mm)
    if not np.isfinite(diameter) or not 1.0 <= diameter <= 15.0:
        raise ValueError(f"The screw diameter must be between 1 and 15 mm; got {diameter_mm!r}.")
    entry = np.asarray(entry_ras, float).reshape(3)
    tip = np.asarray(tip_ras, float).reshape(3)
    if not (np.all(np.isfinite(entry)) and np.all(np.isfinite(tip))):
        raise ValueError("The screw's entry and tip must be finite RAS coordinates in mm.")
    maps = maps if maps is not None else PlanningMaps(anatomy)
    surface, centres = screw_surface_points(entry, tip, diameter)
    if vertebra is None:
        info = _which_vertebra(anatomy, centres)
    else:
        info = anatomy.vertebra(vertebra)
        if info is None:
            names = ", ".join(v.name for v in anatomy.vertebrae)
            raise ValueError(f"No vertebra {vertebra!r} in the anatomy; it has {names}.")
    bone = maps.bone(info.label)
    axis_depth = bone.sample(centres)
    surface_depth = bone.sample(surface.reshape(-1, 3)).reshape(surface.shape[:2])
    ring_t = np.linalg.norm(centres - entry, axis=1)
    mask, bone_entry_mm = counted_surface(surface_depth, axis_depth, ring_t, 0.5 * diameter)
    counted = surface_depth[mask]
    breach = float(max(0.0, -float(counted.min()))) if counted.size else 0.0
    breach = round(breach, 2)
    in_bone = float((counted >= 0).mean()) if counted.size else 0.0
    result: dict[str, Any] = {
        "vertebra": info.name,
        "entry_ras": [round(float(c), 3) for c in entry],
        "tip_ras": [round(float(c), 3) for c in tip],
        "length_mm": round(float(np.linalg.norm(tip - entry)), 2),
        "diameter_mm": diameter,
        "breach_mm": breach,
        "gertzbein_robbins": gertzbein_robbins(breach),
        "surface_in_bone_fraction": round(in_bone, 4),
        "bone_entry_mm": None if bone_entry_mm is None else round(bone_entry_mm, 2),
        "min_distance_to_dural_sac_mm": None,
        "min_distance_to_no_go_zone_mm": None,
        "enters_dural_sac": False,
        "enters_no_go_zone": False,
        "no_go_margin_mm": float(no_go_margin_mm),
    }
    result["acceptable"] = result["gertzbein_robbins"] in ACCEPTABLE_GRADES
    refined = maps.refined_bone(info.label)
    if refined is not None:
        # independent of the labels: the share of the (counted) surface in the CT's own bone
        hu_in = refined.hu_bone.sample(surface[mask].reshape(-1, 3)) >= 0.5
        result["surface_in_hu_bone_fraction"] = round(float(hu_in.mean()), 4) if hu_in.size else 0.0
        result["bone"] = "label refined by the CT's HU"
    neural = maps.neural()
    if neural is not None:
        # distance from the surface = distance from the axis minus the radius (exact for a cylinder)
        gap = float((-neural.sample(centres)).min()) - 0.5 * diameter
        result["min_distance_to_dural_sac_mm"] = round(max(gap, 0.0), 2)
        result["enters_dural_sac"] = bool(gap <= 0.0)
        result["min_distance_to_no_go_zone_mm"] = round(max(gap - float(no_go_margin_mm), 0.0), 2)
        result["enters_no_go_zone"] = bool(gap - float(no_go_margin_mm) <= 0.0)
    return result


GRADE_COLORS: dict[str, tuple[float, float, float]] = {
    "A": (0.15, 0.75, 0.25),
    "B": (0.65, 0.85, 0.2),
    "C": (1.0, 0.75, 0.1),
    "D": (1.0, 0.45, 0.1),
    "E": (0.9, 0.1, 0.1),
}
"""Display colour (RGB 0-1) of a screw by its Gertzbein-Robbins grade."""


def evaluate_line_markup(
    node: Any,
    anatomy: SpineAnatomy,
    *,
    diameter_mm: float | None = None,
    maps: PlanningMaps | None = None,
    no_go_margin_mm: float = DEFAULT_MARGIN_MM,
) -> dict[str, Any]:
    """Re-evaluate the screw a line markup stands for (the Slicer module calls this when it moves).

    Control point 0 is the entry, 1 the tip (world RAS). The diameter comes from ``diameter_mm`` or
    the node's ``LumbarSpine.DiameterMm`` attribute. The result is written back on the node
    (attributes ``LumbarSpine.BreachMm``, ``LumbarSpine.GertzbeinRobbins``,
    ``LumbarSpine.MinDistanceToDuralSacMm``), the line is coloured by grade, and a screw model
    referenced by the role ``LumbarSpine.ScrewModel`` is moved to the new line and recoloured.

    Raises:
        ValueError: not a line markup with two control points, or no diameter.
    """
    if node is None or not node.IsA("vtkMRMLMarkupsLineNode"):
        raise ValueError("A line markup (vtkMRMLMarkupsLineNode) with the screw's entry and tip is needed.")
    if node.GetNumberOfControlPoints() < 2:
        raise ValueError(f"Line {node.GetName()!r} needs two control points (entry, tip).")
    if diameter_mm is None:
        text = node.GetAttribute(ATTR_DIAMETER)
        if not text:
            raise ValueError(f"Line {node.GetName()!r} has no screw diameter: pass diameter_mm or set {ATTR_DIAMETER}.")
        diameter_mm = float(text)
    entry = np.zeros(3)
    tip = np.zeros(3)
    node.GetNthControlPointPositionWorld(0, entry)
    node.GetNthControlPointPositionWorld(1, tip)
    vertebra = node.GetAttribute(ATTR_VERTEBRA) or None
    if vertebra is not None and anatomy.vertebra(vertebra) is None:
        vertebra = None
    result = evaluate_screw(
        anatomy, entry, tip, float(diameter_mm), vertebra=vertebra, maps=maps, no_go_margin_mm=no_go_margin_mm
    )
    node.SetAttribute(ATTR_DIAMETER, f"{float(diameter_mm):g}")
    node.SetAttribute(ATTR_BREACH, f"{result['breach_mm']:.2f}")
    node.SetAttribute(ATTR_GRADE, result["gertzbein_robbins"])
    sac = result["min_distance_to_dural_sac_mm"]
    node.SetAttribute(ATTR_SAC, "" if sac is None else f"{sac:.2f}")
    color = GRADE_COLORS[result["gertzbein_robbins"]]
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(*color)
        display.SetColor(*color)
    model = node.GetNodeReference(MODEL_REFERENCE_ROLE)
    if model is not None:
        from .scene import screw_polydata

        model.SetAndObservePolyData(screw_polydata(entry, tip, float(diameter_mm)))
        if model.GetDisplayNode() is not None:
            model.GetDisplayNode().SetColor(*color)
    return result


def observe_line_markup(
    node: Any,
    anatomy: SpineAnatomy,
    *,
    maps: PlanningMaps | None = None,
    on_result: Any = None,
    no_go_margin_mm: float = DEFAULT_MARGIN_MM,
) -> int:
    """Re-evaluate ``node`` (see :func:`evaluate_line_markup`) whenever a control point moves.

    Returns the VTK observer tag (remove it with ``node.RemoveObserver(tag)``). ``on_result(node,
    result)`` is called after each evaluation (the module refreshes its screw table there).
    """
    import slicer

    maps = maps if maps is not None else PlanningMaps(anatomy)

    def _moved(caller: Any, event: Any) -> None:
        if caller.GetNumberOfControlPoints() < 2:
            return
        result = evaluate_line_markup(caller, anatomy, maps=maps, no_go_margin_mm=no_go_margin_mm)
        if on_result is not None:
            on_result(caller, result)

    return node.AddObserver(slicer.vtkMRMLMarkupsNode.PointModifiedEvent, _moved)
