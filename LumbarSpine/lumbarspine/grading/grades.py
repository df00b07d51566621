"""Central canal grades, their confidence and the class probabilities of the measurement model.

Classes are the RSNA 2024 Lumbar Spine Degenerative Classification ones: ``normal_mild``,
``moderate``, ``severe`` (written ``Normal/Mild``, ``Moderate``, ``Severe`` in the RSNA files,
:data:`RSNA_LABELS`). A value *below* the severe threshold is severe, below the moderate threshold
moderate, else normal/mild.

Confidence: with a measurement ``a`` of standard uncertainty ``sd`` and ``t`` the nearest
threshold, ``confidence = Phi(|a - t| / sd)`` (``Phi`` the standard normal distribution function):
the probability, under a Gaussian measurement error, that the true value lies on the same side of
``t`` as the measurement. A level is ``borderline`` when ``|a - t| < sd``. The class probabilities
(:func:`class_probabilities`) come from the same model; they describe the measurement's
uncertainty, not a clinical likelihood, and the grades are estimates from a segmentation, not a
radiologist's reading.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = [
    "GradingThresholds",
    "CLASSES",
    "RSNA_LABELS",
    "grade_value",
    "confidence",
    "class_probabilities",
]

CLASSES: tuple[str, ...] = ("normal_mild", "moderate", "severe")
"""Central canal classes, mildest first (RSNA 2024 naming)."""

RSNA_LABELS: dict[str, str] = {"normal_mild": "Normal/Mild", "moderate": "Moderate", "severe": "Severe"}
"""The class names as written in the RSNA 2024 data set (train.csv)."""


@dataclass(frozen=True)
class GradingThresholds:
    """Grading cut-offs (defaults from ``shared/docs/clinical-reference.md``; change them per study).

    Attributes:
        area_moderate_mm2: dural sac cross-sectional area (DSCSA) below this is relative stenosis,
            graded ``moderate``; default 100 mm2 (Bolender 1985; usually cited to Hamanishi 1994).
            A ROC study (PMC5728944) found 111 mm2 best.
        area_severe_mm2: DSCSA below this is absolute stenosis, graded ``severe``; default 75 mm2
            (Schonstrom & Hansson 1988: critical size 77 +- 13 mm2).
        ap_moderate_mm: AP diameter below this is relative stenosis (second opinion); 13 mm (Verbiest).
        ap_severe_mm: AP diameter below this is absolute stenosis (second opinion); 10 mm (Verbiest).
    """

    area_moderate_mm2: float = 100.0
    area_severe_mm2: float = 75.0
    ap_moderate_mm: float = 13.0
    ap_severe_mm: float = 10.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"Threshold {name} must be a finite number; got {value!r}.")
            object.__setattr__(self, name, float(value))
        if not 0 < self.area_severe_mm2 < self.area_moderate_mm2:
            raise ValueError(
                "Area thresholds must satisfy 0 < area_severe_mm2 < area_moderate_mm2 (mm2); got "
                f"severe {self.area_severe_mm2:g}, moderate {self.area_moderate_mm2:g}."
            )
        if not 0 < self.ap_severe_mm < self.ap_moderate_mm:
            raise ValueError(
                "AP diameter thresholds must satisfy 0 < ap_severe_mm < ap_moderate_mm (mm); got "
                f"severe {self.ap_severe_mm:g}, moderate {self.ap_moderate_mm:g}."
            )

    def to_dict(self) -> dict[str, float | str]:
        """JSON-ready, with units and sources."""
        return {
            **asdict(self),
            "rule": "severe below the severe threshold, moderate below the moderate threshold, else normal_mild",
            "sources": "DSCSA: Schonstrom & Hansson 1988, Bolender 1985, Hamanishi 1994; AP diameter: Verbiest",
        }


def grade_value(value: float, moderate: float, severe: float) -> str | None:
    """``severe`` below ``severe``, ``moderate`` below ``moderate``, else ``normal_mild``; None for NaN."""
    if value is None or not math.isfinite(value):
        return None
    if value < severe:
        return CLASSES[2]
    if value < moderate:
        return CLASSES[1]
    return CLASSES[0]


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def confidence(value: float, sd: float, moderate: float, severe: float) -> tuple[float | None, bool | None]:
    """``(Phi(|value - nearest threshold| / sd), |value - nearest threshold| < sd)``; Nones for NaN."""
    if value is None or sd is None or not (math.isfinite(value) and math.isfinite(sd)):
        return None, None
    distance = min(abs(value - moderate), abs(value - severe))
    if sd <= 0:
        return 1.0, False
    return _phi(distance / sd), bool(distance < sd)


def class_probabilities(value: float, sd: float, moderate: float, severe: float) -> dict[str, float] | None:
    """Probability of each class when the true value is ``N(value, sd**2)``; None for NaN."""
    if value is None or sd is None or not (math.isfinite(value) and math.isfinite(sd)) or sd <= 0:
        return None
    p_severe = _phi((severe - value) / sd)
    p_below_moderate = _phi((moderate - value) / sd)
    return {
        CLASSES[0]: 1.0 - p_below_moderate,
        CLASSES[1]: p_below_moderate - p_severe,
        CLASSES[2]: p_severe,
    }
