"""Developer tools (Qt-free): reload the library and this helper after editing them in a running Slicer."""

from __future__ import annotations

import importlib
import sys
from typing import List, Sequence

RELOADED_PACKAGES = ("lumbarspine", "SpineModulesLib")


def reload_packages(packages: Sequence[str] = RELOADED_PACKAGES) -> List[str]:
    """Forget every loaded module of ``packages`` and import the packages afresh; returns the names dropped.

    Dropping them all first (instead of ``importlib.reload`` one by one) means no reloaded module keeps a
    class or function of a stale sibling. Callers re-import what they use (Slicer's Reload re-executes the
    module file after this).
    """
    dropped = sorted(name for name in sys.modules if any(name == p or name.startswith(p + ".") for p in packages))
    for name in dropped:
        del sys.modules[name]
    importlib.invalidate_caches()
    for package in packages:
        importlib.import_module(package)
    return dropped
