"""The extension's CMake configures, against a stand-in for Slicer's CMake package.

``Testing/CMake/FakeSlicer`` defines the Slicer/CTK macros the extension calls (same argument names),
checks that every script and resource they are given exists and records the calls. This catches CMake
syntax errors, missing files and library modules left out of the install, without a Slicer build.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CMAKE = shutil.which("cmake")
MODULES = ("SpineFiltering", "SpineStenosis", "SpinePlanning")


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> list[str]:
    if CMAKE is None:
        pytest.skip("cmake is not installed")
    build = tmp_path_factory.mktemp("cmake-build")
    done = subprocess.run(
        [
            CMAKE,
            "-S",
            str(REPO),
            "-B",
            str(build),
            f"-DSlicer_DIR={REPO / 'Testing' / 'CMake' / 'FakeSlicer'}",
            "-DBUILD_TESTING=ON",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (build / "slicer_calls.txt").read_text().splitlines()


def test_every_module_is_built_with_generic_tests_and_a_unittest(calls):
    for module in MODULES:
        line = next(c for c in calls if c.startswith(f"module {module} "))
        assert "generic_tests=TRUE" in line
        assert f"Resources/Icons/{module}.png" in line and f"Resources/UI/{module}.ui" in line
        assert f"unittest {module}.py" in calls


def test_the_whole_library_is_installed_next_to_the_modules(calls):
    line = next(c for c in calls if c.startswith("python_library LumbarSpineLib "))
    assert "no_install_subdir=TRUE" in line
    assert "install_dir=lib/Slicer-5.13/qt-scripted-modules/lumbarspine" in line
    installed = set(line.split("scripts=", 1)[1].split())
    library = REPO / "LumbarSpine" / "lumbarspine"
    expected = {p.relative_to(library).as_posix() for p in library.rglob("*.py") if "__pycache__" not in p.parts}
    assert installed == expected


def test_extension_metadata_and_packaging(calls):
    metadata = dict(c.split(" ", 1)[1].split("=", 1) for c in calls if c.startswith("metadata "))
    assert metadata["EXTENSION_CATEGORY"] == "Spine"
    assert metadata["EXTENSION_DEPENDS"] == "NA"
    assert metadata["EXTENSION_ICONURL"].endswith("Resources/Icons/LumbarSpine.png")
    for url in metadata["EXTENSION_SCREENSHOTURLS"].split():
        assert (REPO / url.split("/main/", 1)[1]).is_file(), url
    assert "cpack LumbarSpine" in calls


def test_the_helper_package_is_installed_next_to_the_modules(calls):
    """SpineModulesLib (the panels' shared Qt-side helper) is installed beside the modules, every file of it."""
    line = next(c for c in calls if c.startswith("python_library SpineModulesLib "))
    assert "no_install_subdir=TRUE" in line
    assert "install_dir=lib/Slicer-5.13/qt-scripted-modules/SpineModulesLib" in line
    installed = set(line.split("scripts=", 1)[1].split())
    assert installed == {p.name for p in (REPO / "LumbarSpine" / "SpineModulesLib").glob("*.py")}
    assert "worker.py" in installed and "controller.py" in installed
