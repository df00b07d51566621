"""Static checks of the Slicer extension layout (no Slicer needed).

They read the CMake files, the module ``.py`` files (with ``ast``), the Qt Designer ``.ui`` files (XML)
and the PNG icons, and check what Slicer's build and module loader expect: the extension template's
CMake calls, one folder per scripted module with its CMakeLists, ``.py``, ``Resources/UI/<Module>.ui``
and ``Resources/Icons/<Module>.png``, the four classes of a scripted module, widget names that exist
in the ``.ui``, and logic classes that take an explicit MRML scene.
"""

from __future__ import annotations

import ast
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "LumbarSpine"
LIBRARY = SOURCE / "lumbarspine"
MODULE_TITLES = {
    "SpineFiltering": "Spine Volume Filtering",
    "SpineStenosis": "Lumbar Stenosis Grading",
    "SpinePlanning": "Spine Surgical Planning",
}
MODULES = sorted(MODULE_TITLES)
README_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------- helpers
def _cmake(path: Path) -> str:
    """CMake text without comments, whitespace collapsed."""
    text = "\n".join(
        line.split("#", 1)[0] if not line.lstrip().startswith("#") else "" for line in path.read_text().splitlines()
    )
    return re.sub(r"\s+", " ", text)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR", f"{path}: first PNG chunk is not IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _tree(module: str) -> ast.Module:
    path = SOURCE / module / f"{module}.py"
    return ast.parse(path.read_text(), filename=str(path))


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _ui(module: str) -> ET.Element:
    return ET.parse(SOURCE / module / "Resources" / "UI" / f"{module}.ui").getroot()


def _ui_widgets(root: ET.Element) -> dict[str, str]:
    """objectName -> class of every widget (and layout) in a .ui file."""
    names = {}
    for element in root.iter():
        if element.tag in ("widget", "layout") and element.get("name"):
            names[element.get("name")] = element.get("class")
    return names


def _is_slicer_mrmlscene(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "mrmlScene"
        and isinstance(node.value, ast.Name)
        and node.value.id == "slicer"
    )


def _decorator_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return names


# -------------------------------------------------------------------------------- top-level CMake
def test_top_level_cmakelists_follows_the_extension_template():
    text = _cmake(ROOT / "CMakeLists.txt")
    # as in Slicer's current extension template (Utilities/Templates/Extensions/Default/CMakeLists.txt)
    assert re.search(r"cmake_minimum_required\( ?VERSION 3\.20\.6\.\.\.3\.22\.6 FATAL_ERROR ?\)", text)
    assert re.search(r'set\( ?EXTENSION_MINIMUM_SLICER_VERSION "5\.8" ?\)', text)
    assert "Requires 3D Slicer 5.8 or newer" in text
    assert re.search(r"project\( ?LumbarSpine ?\)", text)
    for key in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        match = re.search(rf'set\( ?{key} "([^"]+)" ?\)', text)
        assert match, f"top-level CMakeLists.txt does not set {key}"
        assert match.group(1).strip(), f"{key} is empty"
    assert re.search(r'set\( ?EXTENSION_CATEGORY "Spine" ?\)', text)
    assert re.search(r'set\( ?EXTENSION_DEPENDS "NA" ?\)', text)
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf'set\( ?{key} "https://', text), f"{key} must be an https URL"

    order = [
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(LumbarSpine/lumbarspine)",
        "add_subdirectory(LumbarSpine/SpineModulesLib)",
        *(f"add_subdirectory(LumbarSpine/{module})" for module in MODULES),
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ]
    compact = text.replace(" ", "")
    positions = []
    for call in (c.replace(" ", "") for c in order):
        assert call in compact, f"top-level CMakeLists.txt lacks {call}"
        positions.append(compact.index(call))
    assert positions[0] < positions[1], "find_package(Slicer) comes before include(${Slicer_USE_FILE})"
    assert max(positions[2:-2]) < positions[-2] < positions[-1], "GENERATE_CONFIG and CPACK come last"
    assert min(positions[2:-2]) > positions[1], "subdirectories come after include(${Slicer_USE_FILE})"


def test_every_add_subdirectory_exists_and_every_module_folder_is_added():
    text = _cmake(ROOT / "CMakeLists.txt")
    added = re.findall(r"add_subdirectory\( ?([^ )]+) ?\)", text)
    for folder in added:
        assert (ROOT / folder / "CMakeLists.txt").is_file(), f"add_subdirectory({folder}) has no CMakeLists.txt"
    scripted = sorted(
        path.parent.name
        for path in SOURCE.glob("*/CMakeLists.txt")
        if "slicerMacroBuildScriptedModule" in path.read_text()
    )
    assert scripted == MODULES
    libraries = {"LumbarSpine/lumbarspine", "LumbarSpine/SpineModulesLib"}
    assert sorted(f.split("/")[-1] for f in added if f not in libraries) == MODULES


def test_library_cmakelists_installs_the_package_next_to_the_modules():
    text = _cmake(LIBRARY / "CMakeLists.txt")
    # CONFIGURE_DEPENDS: new library files are picked up without re-running CMake by hand
    assert re.search(
        r"file\( ?GLOB_RECURSE \S+ LIST_DIRECTORIES false CONFIGURE_DEPENDS RELATIVE \S+ \S*\*\.py ?\)", text
    )
    assert "ctkMacroCompilePythonScript(" in text, "ctkMacroCompilePythonScript call missing"
    call = text[text.index("ctkMacroCompilePythonScript(") :]
    for argument in ("TARGET_NAME LumbarSpineLib", "SCRIPTS", 'RESOURCES ""'):
        assert argument in call
    assert re.search(r"DESTINATION_DIR \$\{CMAKE_BINARY_DIR\}/\$\{Slicer_QTSCRIPTEDMODULES_LIB_DIR\}/lumbarspine", call)
    assert re.search(r"INSTALL_DIR \$\{Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR\}/lumbarspine", call)
    assert (LIBRARY / "__init__.py").is_file()


def test_library_never_uses_the_global_scene():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        offenders += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree) if _is_slicer_mrmlscene(n)]
    assert not offenders, f"slicer.mrmlScene used in the library: {offenders}"


def test_extension_icon_is_128_square_png():
    assert _png_size(ROOT / "Resources" / "Icons" / "LumbarSpine.png") == (128, 128)


# ------------------------------------------------------------------------------------- modules
@pytest.mark.parametrize("module", MODULES)
def test_module_cmakelists(module):
    folder = SOURCE / module
    text = _cmake(folder / "CMakeLists.txt")
    assert re.search(rf"set\( ?MODULE_NAME {module} ?\)", text)
    build = re.search(r"slicerMacroBuildScriptedModule\((.*?)\)", text)
    assert build, "slicerMacroBuildScriptedModule missing"
    args = build.group(1)
    for argument in ("NAME ${MODULE_NAME}", "SCRIPTS ${MODULE_PYTHON_SCRIPTS}", "RESOURCES ${MODULE_PYTHON_RESOURCES}"):
        assert argument in args
    assert "WITH_GENERIC_TESTS" in args
    testing = re.search(r"if\( ?BUILD_TESTING ?\)(.*?)endif\(", text)
    assert testing, "no if(BUILD_TESTING) block"
    assert re.search(r"slicer_add_python_unittest\( ?SCRIPT \$\{MODULE_NAME\}\.py ?\)", testing.group(1))
    # Every listed script and resource exists.
    for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
        listed = re.search(rf"set\( ?{variable} (.*?)\)", text)
        assert listed, f"{variable} not set"
        for item in listed.group(1).split():
            path = folder / item.replace("${MODULE_NAME}", module)
            assert path.is_file(), f"{variable} lists missing {path.relative_to(ROOT)}"


@pytest.mark.parametrize("module", MODULES)
def test_module_files_exist(module):
    folder = SOURCE / module
    assert (folder / f"{module}.py").is_file()
    assert (folder / "Resources" / "UI" / f"{module}.ui").is_file()
    width, height = _png_size(folder / "Resources" / "Icons" / f"{module}.png")
    assert width == height >= 64
    assert (width, height) == (128, 128)


@pytest.mark.parametrize("module", MODULES)
def test_module_ui_is_valid_designer_xml(module):
    root = _ui(module)
    assert root.tag == "ui"
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget" and top.get("name") == module
    widgets = _ui_widgets(root)
    assert len(widgets) == len({e.get("name") for e in root.iter() if e.tag in ("widget", "layout") and e.get("name")})
    classes = set(widgets.values())
    assert "ctkCollapsibleButton" in classes
    assert widgets.get("applyButton") == "QPushButton"
    assert widgets.get("cancelButton") == "QPushButton"
    assert widgets.get("progressBar") == "QProgressBar"
    assert widgets.get("statusLabel") == "QLabel"
    custom = {c.findtext("class") for c in root.iter("customwidget")}
    assert {"qMRMLWidget", "qMRMLNodeComboBox", "ctkCollapsibleButton"} <= custom

    combos = [name for name, cls in widgets.items() if cls == "qMRMLNodeComboBox"]
    assert combos, "no qMRMLNodeComboBox selector"
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("sender") == module
        and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert set(combos) <= connected, f"selectors without a scene connection: {set(combos) - connected}"
    for combo in root.iter("widget"):
        if combo.get("class") == "qMRMLNodeComboBox":
            types = [
                s.text for p in combo.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")
            ]
            assert types and all(t.startswith("vtkMRML") for t in types)


@pytest.mark.parametrize("module", MODULES)
def test_module_python_defines_the_scripted_module_classes(module):
    tree = _tree(module)
    classes = _classes(tree)
    bases = {
        module: "ScriptedLoadableModule",
        f"{module}Widget": "ScriptedLoadableModuleWidget",
        f"{module}Logic": "ScriptedLoadableModuleLogic",
        f"{module}Test": "ScriptedLoadableModuleTest",
    }
    for name, base in bases.items():
        assert name in classes, f"{module}.py lacks class {name}"
        base_names = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in classes[name].bases}
        assert base in base_names, f"{name} does not derive from {base}"

    # Module metadata.
    assignments = {}
    for node in ast.walk(classes[module]):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute):
                    assignments[target.attr] = node.value
    # Translatable texts as in Slicer's 5.10 template: _("...") and translate("qSlicerAbstractCoreModule", ...).
    title = assignments["title"]
    assert isinstance(title, ast.Call) and ast.unparse(title.func) == "_"
    assert ast.literal_eval(title.args[0]) == MODULE_TITLES[module]
    categories = assignments["categories"]
    assert [ast.unparse(c) for c in categories.elts] == ["translate('qSlicerAbstractCoreModule', 'Spine')"]
    expected_dependencies = ["Segmentations"] if module == "SpinePlanning" else []
    assert ast.literal_eval(assignments["dependencies"]) == expected_dependencies
    assert ast.literal_eval(assignments["contributors"])
    assert "helpText" in assignments and "acknowledgementText" in assignments
    source = (SOURCE / module / f"{module}.py").read_text()
    assert README_URL in source

    # A parameter node wrapper with typed fields.
    wrappers = [c for c in classes.values() if "parameterNodeWrapper" in _decorator_names(c)]
    assert len(wrappers) == 1, "one @parameterNodeWrapper class expected"
    fields = [n for n in wrappers[0].body if isinstance(n, ast.AnnAssign)]
    assert fields, "the parameter node wrapper has no typed fields"

    # The test class has a runTest and at least one test_ method.
    test_methods = {n.name for n in classes[f"{module}Test"].body if isinstance(n, ast.FunctionDef)}
    test_bases = [getattr(b, "id", "") for b in classes[f"{module}Test"].bases]
    assert "runTest" in test_methods or test_bases[0] == "SelfTestMixin"  # the helper's runTest runs every test_
    assert any(m.startswith("test_") for m in test_methods)
    assert "phantom_node(" in source  # self-tests run on the synthetic phantom (SpineModulesLib.phantom_node)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_its_helper_plainly_and_keeps_no_copies(module):
    """No sys.path hacks and no try/except around imports (a broken library must show its real error); the
    helper package gives the shared pieces, so no module defines its own copy of them."""
    tree = _tree(module)
    source = (SOURCE / module / f"{module}.py").read_text()
    assert "sys.path" not in source
    assert not any(isinstance(node, ast.Try) for node in tree.body), "a module-level try block"
    helper_imports = [
        n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("SpineModulesLib")
    ]
    assert {n.module for n in helper_imports} >= {"SpineModulesLib", "SpineModulesLib.widget", "SpineModulesLib.i18n"}
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & {"OperationCancelled", "_report", "_phantomVolumes", "_ensureScipy"}
    # Library modules other than the light ones the helper already loads are imported where they are used.
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("lumbarspine"), "lumbarspine imported at module load time"


def test_helper_package_installs_every_file_it_has():
    text = _cmake(SOURCE / "SpineModulesLib" / "CMakeLists.txt")
    listed = set(re.search(r"set\( ?HELPER_PYTHON_SCRIPTS (.*?)\)", text).group(1).split())
    assert listed == {p.name for p in (SOURCE / "SpineModulesLib").glob("*.py")}
    call = text[text.index("ctkMacroCompilePythonScript(") :]
    assert re.search(r"INSTALL_DIR \$\{Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR\}/SpineModulesLib", call)
    assert "NO_INSTALL_SUBDIR" in call


@pytest.mark.parametrize("module", MODULES)
def test_output_selectors_offer_create_new_once(module):
    """qMRMLNodeComboBox adds "Create new X" and "Create new X as..." when addEnabled is on: with a
    "Create new ..." none item as well that made three. Output selectors keep only the none item."""
    for combo in _ui(module).iter("widget"):
        if combo.get("class") != "qMRMLNodeComboBox":
            continue
        props = {p.get("name"): p for p in combo.findall("property")}
        none_display = props.get("noneDisplay")
        if none_display is not None and (none_display.findtext("string") or "").startswith("Create new"):
            assert props["addEnabled"].findtext("bool") == "false", combo.get("name")


@pytest.mark.parametrize("module", MODULES)
def test_widget_uses_only_names_from_its_ui(module):
    tree = _tree(module)
    widget = _classes(tree)[f"{module}Widget"]
    used = set()
    for node in ast.walk(widget):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
        ):
            used.add(node.attr)
    missing = used - set(_ui_widgets(_ui(module)))
    assert not missing, f"self.ui names missing from {module}.ui: {sorted(missing)}"

    # The shared panel base loads the .ui named by uiFile, connects the parameter node and runs off the GUI
    # thread; the names it and the lockedWidgets use exist in every module's .ui.
    attributes = {
        t.id: n.value for n in widget.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    assert ast.literal_eval(attributes["uiFile"]) == f"UI/{module}.ui"
    base = "SpineModuleWidget"
    assert [getattr(b, "id", "") for b in widget.bases][0] == base, "SpineModuleWidget must come first"
    helper = ast.parse((SOURCE / "SpineModulesLib" / "widget.py").read_text())
    helper_widget = next(n for n in helper.body if isinstance(n, ast.ClassDef) and n.name == base)
    helper_source = ast.unparse(helper_widget)
    for needle in ("self.resourcePath(self.uiFile)", "slicer.util.childWidgetVariables", ".connectGui(self.ui)"):
        assert needle in helper_source
    assert "processEvents" not in helper_source, "the run must not block the GUI thread"
    helper_used = {
        n.attr
        for n in ast.walk(helper_widget)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "ui"
    }
    locked = set(ast.literal_eval(attributes["lockedWidgets"]))
    assert not (helper_used | locked) - set(_ui_widgets(_ui(module)))

    # Every name the parameter node wrapper connects through "SlicerParameterName" is a field.
    wrapper = next(c for c in _classes(tree).values() if "parameterNodeWrapper" in _decorator_names(c))
    fields = {n.target.id for n in wrapper.body if isinstance(n, ast.AnnAssign)}
    connected = {p.findtext("string") for p in _ui(module).iter("property") if p.get("name") == "SlicerParameterName"}
    assert connected and connected <= fields, f"unknown SlicerParameterName(s): {sorted(connected - fields)}"


@pytest.mark.parametrize("module", MODULES)
def test_logic_takes_an_explicit_scene(module):
    logic = _classes(_tree(module))[f"{module}Logic"]
    offenders = [n.lineno for n in ast.walk(logic) if _is_slicer_mrmlscene(n)]
    assert not offenders, f"{module}Logic uses slicer.mrmlScene (lines {offenders}); take a scene argument"
    methods = {n.name: n for n in logic.body if isinstance(n, ast.FunctionDef)}
    assert "process" in methods
    process = methods["process"]
    names = [a.arg for a in process.args.args]
    assert "scene" in names, "process() needs a scene argument"
    defaults = dict(zip(names[len(names) - len(process.args.defaults) :], process.args.defaults))
    assert isinstance(defaults.get("scene"), ast.Constant) and defaults["scene"].value is None
    raises = {  # bad input is refused in process() or the methods it calls (makeJob, applyResult, ...)
        n.exc.func.id
        for n in ast.walk(logic)
        if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and isinstance(n.exc.func, ast.Name)
    }
    assert "ValueError" in raises, "the Logic must raise ValueError on bad input"
