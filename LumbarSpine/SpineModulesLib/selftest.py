"""The modules' self-tests share this: a fresh scene before each ``test_*`` method, all of them in order."""

from __future__ import annotations


class SelfTestMixin:
    """Put first among the bases of a ``ScriptedLoadableModuleTest``; define ``test_*`` methods only."""

    def setUp(self) -> None:
        import slicer

        slicer.mrmlScene.Clear(0)

    def runTest(self) -> None:
        for name in sorted(n for n in dir(self) if n.startswith("test_") and callable(getattr(self, n))):
            self.setUp()
            getattr(self, name)()
