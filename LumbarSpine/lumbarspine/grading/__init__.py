"""Central canal stenosis grading: from a spine anatomy (segmentation) and an image to graded levels.

Modules, one job each:

* :mod:`.centreline`: the dural sac centreline (smoothing spline) and the planes along it;
* :mod:`.measure`: sub-voxel area, AP diameter, transverse width, outline, uncertainty in a plane,
  and the area on an acquired slice;
* :mod:`.grades`: :class:`GradingThresholds`, RSNA classes, confidence and class probabilities;
* :mod:`.core`: :func:`grade_anatomy` (levels, minimum search, references, profile) and the
  label-map entry point :func:`grade_levels` of the Slicer module;
* :mod:`.report`: ``report.json``, ``report.csv``, ``rsna.csv``;
* :mod:`.pictures`: the measurement plane per level and the area along the canal (PNG);
* :mod:`.scene`: the result in a Slicer scene (table, markups, plot, 3D colours, slice placement);
* :mod:`.study`: :func:`grade_study`, one study from paths to files; :mod:`.command`: ``lumbarspine grade``.

Grades are estimates from a segmentation and published cut-offs, not a radiologist's reading.
"""

from .core import GradingResult, LevelResult, grade_anatomy, grade_levels, table_rows
from .grades import CLASSES, RSNA_LABELS, GradingThresholds, class_probabilities, confidence, grade_value
from .study import grade_study

__all__ = [
    "GradingThresholds",
    "GradingResult",
    "LevelResult",
    "grade_anatomy",
    "grade_levels",
    "grade_study",
    "table_rows",
    "grade_value",
    "confidence",
    "class_probabilities",
    "CLASSES",
    "RSNA_LABELS",
]
