"""SpineModulesLib: what the LumbarSpine Slicer modules share (installed next to them by CMake).

Qt-free, Python 3.9-safe parts, tested without Slicer:

- :mod:`.protocol`: a library call as a :class:`Job`, its inputs and result as files in a folder;
- :mod:`.worker`: the process that runs a job and streams progress as JSON lines;
- :mod:`.controller`: :class:`WorkerProcess` and the run/lock/cancel state machine :class:`RunController`;
- :mod:`.nodes`, :mod:`.outputs`: node checks, progress plumbing, the nodes a run adds (replaced by the next);
- :mod:`.grading_scene`, :mod:`.views`: the grading in the scene, slice views moved onto a level's plane;
- :mod:`.screws`: the planned screws as line markups (table rows, resize, re-plan, hide, follow moves);
- :mod:`.plan_scene`: the surgical plan in the scene (decompressions, no-go zone, bone, sac), export, 3D cameras;
- :mod:`.gpu`: which CuPy wheel matches the CUDA driver; :mod:`.devtools`: reload after edits;
- :mod:`.i18n`: ``_()`` / ``translate()`` with a fallback where ``slicer.i18n`` is missing.

Qt side: :mod:`.widget` (the module panel base class, CuPy on first use). Import it only inside Slicer.
"""

from __future__ import annotations

try:
    import lumbarspine  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "lumbarspine":
        raise  # a missing dependency inside the library: show the real error
    raise ModuleNotFoundError(
        "The LumbarSpine modules need the 'lumbarspine' library, which Python cannot find. Reinstall the "
        "LumbarSpine extension; when running from a source checkout, add its 'LumbarSpine' folder (the one "
        "that holds 'lumbarspine' and 'SpineModulesLib') to Edit > Application Settings > Modules > "
        "Additional module paths and restart Slicer.",
        name="lumbarspine",
    ) from exc

from lumbarspine.progress import OperationCancelled, check_cancel

from .protocol import Job, run_job

__all__ = ["Job", "OperationCancelled", "check_cancel", "phantom_node", "run_job"]


def phantom_node(scene, which: str, name: str, **spec):
    """A node in ``scene`` holding the synthetic lumbar phantom's ``"image"`` or ``"labels"`` (modules' self-tests).

    ``spec``: :class:`lumbarspine.phantom.PhantomSpec` fields (spacing, noise, stenosis, ...).
    """
    from lumbarspine.phantom import PhantomSpec, generate_phantom
    from lumbarspine.slicer_nodes import volume_to_node

    phantom = generate_phantom(PhantomSpec(**spec))
    return volume_to_node(getattr(phantom, which), scene, name=name)
