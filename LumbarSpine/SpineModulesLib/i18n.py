"""Translation wrappers as in Slicer's scripted-module template: ``_("text")`` and ``translate(context, text)``.

Slicer 5.4 and newer provide ``slicer.i18n``; ``_`` is then Slicer's own ``tr`` (re-exported, not wrapped,
so the translation context stays the calling file). Where ``slicer.i18n`` is missing (older Slicer, a
Slicer-free Python) the text is returned unchanged.
"""

from __future__ import annotations

__all__ = ["_", "translate"]

try:
    from slicer.i18n import tr as _
    from slicer.i18n import translate
except ImportError:  # no slicer.i18n here: English text

    def _(text: str) -> str:
        return text

    def translate(context: str, text: str) -> str:
        return text
