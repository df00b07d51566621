"""Surgical planning: pedicle screws sized to the patient, breach evaluation, decompression volumes,
the no-go zone, the 3D scene and exports (see each module).

``from lumbarspine.planning import no_go_zone`` keeps working (the no-go zone moved to
:mod:`lumbarspine.planning.no_go`).
"""

from .evaluate import PlanningMaps, evaluate_line_markup, evaluate_screw, gertzbein_robbins, observe_line_markup
from .no_go import DEFAULT_MARGIN_MM, NEURAL_LABELS, NO_GO_ZONE, no_go_zone
from .screw_edit import replan_screw, resize_screw
from .screws import PlanningParameters, RefusedScrew, ScrewPlan, plan_screws

__all__ = [
    "NO_GO_ZONE",
    "NEURAL_LABELS",
    "DEFAULT_MARGIN_MM",
    "no_go_zone",
    "PlanningMaps",
    "evaluate_screw",
    "evaluate_line_markup",
    "observe_line_markup",
    "gertzbein_robbins",
    "PlanningParameters",
    "ScrewPlan",
    "RefusedScrew",
    "plan_screws",
    "replan_screw",
    "resize_screw",
]
