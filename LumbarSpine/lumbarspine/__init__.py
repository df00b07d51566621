"""LumbarSpine: the Qt-free library behind the LumbarSpine 3D Slicer extension.

It holds all computation (GPU/CPU volume filtering, the synthetic lumbar phantom, canal
measurement, headless Slicer scenes) and never touches ``slicer.app``, ``slicer.mrmlScene``,
``qt`` or ``ctk``: it takes arrays with their geometry (:class:`~lumbarspine.volume.Volume`) or
MRML nodes with an explicit scene.
"""

from .volume import Volume

__version__ = "0.1.0"
__all__ = ["Volume", "__version__"]
