"""Issue #6, command line: every expected failure is one clear line and a documented exit status,
arguments are checked before any work or output, the input is never touched."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from lumbarspine import cli
from lumbarspine.cli import EXIT_INTERRUPTED, EXIT_MEMORY, EXIT_OUTPUT, EXIT_USAGE, main
from lumbarspine.filters import apply_filter, apply_preset
from lumbarspine.io import read_volume, write_volume
from lumbarspine.safe_write import OutputError
from lumbarspine.volume import Volume

LIBRARY = str(Path(__file__).resolve().parents[2] / "LumbarSpine")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def image(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    k, j, i = np.mgrid[0:10, 0:24, 0:24]
    body = ((j - 12) ** 2 + (i - 12) ** 2 < 64).astype(np.float32) * 100
    vol = Volume((body + rng.normal(0, 5, body.shape)).astype(np.float32), spacing=(0.4, 0.4, 3.0))
    return write_volume(vol, tmp_path / "in" / "t2.nii.gz")


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("[")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -------------------------------------------------------------------------------- input protection
def test_output_equal_to_input_is_refused_unless_overwrite(image, tmp_path, capsys):
    before = _digest(image)
    status, _, err = _run(["filter", image, image, "--filter", "gaussian"], capsys)
    assert status == EXIT_USAGE and "inputs are never modified" in _one_line(err) and "--overwrite" in err
    link = tmp_path / "link.nii.gz"
    link.symlink_to(image)
    status, _, err = _run(["filter", image, link, "--filter", "gaussian"], capsys)  # same file through a link
    assert status == EXIT_USAGE
    assert _digest(image) == before
    status, _, _ = _run(["filter", image, image, "--filter", "gaussian", "--overwrite", "--quiet"], capsys)
    assert status == 0 and _digest(image) != before


def test_full_disk_is_exit_3_and_leaves_nothing(image, tmp_path):
    child = textwrap.dedent(
        """
        import resource, signal, sys
        sys.path.insert(0, sys.argv[1])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from lumbarspine.cli import main
        sys.exit(main(sys.argv[2:]))
        """
    )
    out = tmp_path / "out" / "smooth.nii"
    before = _digest(image)
    proc = subprocess.run(
        [sys.executable, "-c", child, LIBRARY, "filter", str(image), str(out), "--filter", "gaussian", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert f"lumbarspine filter: error: Cannot write {out}" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrote" not in proc.stdout
    assert not out.exists() and [p.name for p in out.parent.iterdir()] == []
    assert _digest(image) == before


def test_demo_on_a_full_disk_leaves_only_complete_files(tmp_path):
    pytest.importorskip("slicer", reason="the demo needs slicer-core")
    child = textwrap.dedent(
        """
        import resource, signal, sys
        sys.path.insert(0, sys.argv[1])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        from lumbarspine.cli import main
        sys.exit(main(sys.argv[2:]))
        """
    )
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-c", child, LIBRARY, "demo", "--out", str(out), "--spacing", "2", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert "lumbarspine demo: error: Cannot write" in proc.stderr and "Traceback" not in proc.stderr
    for path in out.iterdir():  # what is there is complete; no temporary or empty file
        assert ".tmp" not in path.name and path.stat().st_size > 0
        if path.name.endswith(".nii.gz"):
            read_volume(path)


def test_output_whose_parent_is_a_file_fails_before_work(image, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    monkeypatch.setattr("lumbarspine.filters.apply_filter", lambda *a, **k: pytest.fail("no work may start"))
    status, _, err = _run(["filter", image, blocker / "out.nii.gz", "--filter", "gaussian"], capsys)
    assert status == EXIT_OUTPUT and "is a file, not a folder" in _one_line(err)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_output_folder(image, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        status, _, err = _run(["filter", image, folder / "o.nii.gz", "--filter", "gaussian"], capsys)
    finally:
        folder.chmod(0o755)
    assert status == EXIT_OUTPUT and "permission denied" in err


def test_unreadable_and_truncated_inputs(image, tmp_path, capsys):
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(image.read_bytes()[:200])
    status, _, err = _run(["filter", cut, tmp_path / "o.nii.gz", "--filter", "gaussian"], capsys)
    assert status == EXIT_USAGE and "Get the file again" in _one_line(err)
    junk = tmp_path / "junk.nrrd"
    junk.write_bytes(b"no image")
    status, _, err = _run(["filter", junk, tmp_path / "o.nii.gz", "--filter", "gaussian"], capsys)
    assert status == EXIT_USAGE and ".cxx" not in _one_line(err)
    assert not (tmp_path / "o.nii.gz").exists()


def test_upper_case_names(image, tmp_path, capsys):
    upper = tmp_path / "T2.NII.GZ"
    upper.write_bytes(image.read_bytes())
    status, _, _ = _run(["filter", upper, tmp_path / "OUT.NII.GZ", "--filter", "gaussian", "--quiet"], capsys)
    assert status == 0 and read_volume(tmp_path / "OUT.NII.GZ").shape == (10, 24, 24)


# ---------------------------------------------------------------------------- memory, interruption
def test_memory_is_checked_before_the_work(image, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LUMBARSPINE_MEMORY_BUDGET", "64M")
    status, _, err = _run(["filter", image, tmp_path / "o.nii.gz", "--filter", "resample", "--spacing", "0.05"], capsys)
    line = _one_line(err)
    assert status == EXIT_MEMORY and "needs about" in line and "coarser spacing" in line and "64.0 MiB" in line
    monkeypatch.setenv("LUMBARSPINE_MEMORY_BUDGET", "100K")
    status, _, err = _run(
        ["filter", image, tmp_path / "o.nii.gz", "--filter", "binary_morphology", "--radius", "50"], capsys
    )
    assert status == EXIT_MEMORY and "smaller radius" in _one_line(err)
    assert not (tmp_path / "o.nii.gz").exists()


def test_numpy_memory_error_is_exit_4(image, tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.08 TiB for an array with shape (9000, 9000, 9000)")

    monkeypatch.setattr("lumbarspine.filters.apply_filter", boom)
    status, _, err = _run(["filter", image, tmp_path / "o.nii.gz", "--filter", "gaussian"], capsys)
    assert status == EXIT_MEMORY and "Unable to allocate" in _one_line(err)


@pytest.mark.parametrize("kind", ["ctrl-c", "cancel"])
def test_interrupt_and_cancel_are_exit_130(image, tmp_path, capsys, monkeypatch, kind):
    from lumbarspine.filters import FilterCancelled

    def stop(*args, **kwargs):
        raise KeyboardInterrupt if kind == "ctrl-c" else FilterCancelled("Filtering was cancelled by the user.")

    monkeypatch.setattr("lumbarspine.filters.apply_filter", stop)
    status, _, err = _run(["filter", image, tmp_path / "o.nii.gz", "--filter", "gaussian"], capsys)
    assert status == EXIT_INTERRUPTED and "no partial output" in _one_line(err)
    assert not (tmp_path / "o.nii.gz").exists()


def test_verbose_before_or_after_the_subcommand_shows_the_traceback(image, capsys):
    for argv in (
        ["-v", "filter", image, image, "--filter", "gaussian"],
        ["filter", image, image, "-v", "--filter", "gaussian"],
    ):
        status, _, err = _run(argv, capsys)
        assert status == EXIT_USAGE and "Traceback" in err and "inputs are never modified" in err.splitlines()[-1]


# ------------------------------------------------------------------------------- argument parsing
def test_strict_booleans_and_spacing_forms(image, tmp_path, capsys):
    out = tmp_path / "o.nii.gz"
    status, _, err = _run(["filter", image, out, "--filter", "resample", "--antialias", "maybe"], capsys)
    assert status == EXIT_USAGE and "true or false" in _one_line(err) and not out.exists()
    status, _, _ = _run(["filter", image, out, "--filter", "resample", "--spacing", "0.8", "--quiet"], capsys)
    assert status == 0 and read_volume(out).spacing == pytest.approx((0.8, 0.8, 0.8))
    argv = ["filter", image, out, "--filter", "resample", "--spacing", "0.8", "0.8", "1.5", "--antialias", "no"]
    status, _, _ = _run([*argv, "--quiet"], capsys)
    assert status == 0 and read_volume(out).spacing == pytest.approx((0.8, 0.8, 1.5))
    status, _, err = _run(["filter", image, out, "--filter", "resample", "--spacing", "1", "2"], capsys)
    assert status == EXIT_USAGE and "one number (isotropic) or three" in err


def test_negative_values_and_equals_form(image, tmp_path, capsys):
    out = tmp_path / "c.nii.gz"
    for argv in (["--lower", "-5", "--upper", "50"], ["--lower=-5", "--upper=50"]):
        status, _, err = _run(["filter", image, out, "--filter", "clip", *argv, "--quiet"], capsys)
        assert status == 0, err
        clipped = read_volume(out).array
        assert clipped.min() >= -5 and clipped.max() <= 50 and clipped.min() < 0
    status, _, err = _run(["filter", image, out, "--filter", "resample", "--spacing=0.8,0.8,1.5", "--quiet"], capsys)
    assert status == 0 and read_volume(out).spacing == pytest.approx((0.8, 0.8, 1.5))


def test_mask_parameter_reads_a_volume_file(image, tmp_path, capsys):
    vol = read_volume(image)
    mask = vol.with_array((np.asarray(vol.array) > 50).astype(np.uint8), is_label=True)
    mask_path = write_volume(mask, tmp_path / "mask.nii.gz")
    out = tmp_path / "z.nii.gz"
    status, _, err = _run(["filter", image, out, "--filter", "zscore", "--mask", mask_path, "--quiet"], capsys)
    assert status == 0, err
    expected = apply_filter(vol, "zscore", backend="numpy", mask=read_volume(mask_path, is_label=True)).volume
    np.testing.assert_allclose(read_volume(out).array, expected.array, atol=1e-5)


def test_preset_overrides_and_sub_millimetre_t2(image, tmp_path, capsys):
    out = tmp_path / "s.nii.gz"
    argv = ["filter", image, out, "--preset", "t2-smooth", "--set", "gradient_diffusion.iterations=2", "--quiet"]
    status, _, err = _run(argv, capsys)
    assert status == 0, err  # 0.4 mm in-plane: the default time step scales with the spacing
    expected = apply_preset(
        read_volume(image), "t2-smooth", backend="numpy", overrides={"gradient_diffusion": {"iterations": 2}}
    )
    np.testing.assert_allclose(read_volume(out).array, expected.volume.array, atol=1e-5)
    status, _, err = _run(["filter", image, out, "--preset", "t2-canal", "--quiet"], capsys)
    assert status == 0 and "unstable" not in err and "oscillate" not in err
    for bad, message in (
        ("nosuch.iterations=3", "no step(s) nosuch"),
        ("gradient_diffusion.iterations=-1", "out of range"),
        ("iterations=3", "STEP.PARAM=VALUE"),
    ):
        status, _, err = _run(["filter", image, tmp_path / "x.nii.gz", "--preset", "t2-smooth", "--set", bad], capsys)
        assert status == EXIT_USAGE and message in _one_line(err)
    assert not (tmp_path / "x.nii.gz").exists()


def test_filter_list_shows_ranges_and_progress_is_not_repeated(image, tmp_path, capsys):
    status, out, _ = _run(["filter", "--list"], capsys)
    assert status == 0
    assert "--sigma (0 .. 50 mm; default 1 mm)" in out and "--radius (1 .. 3 voxels" in out
    assert "--set STEP.PARAM=VALUE" in out and "curvature_diffusion: time_step=0.0" in out
    status, _, err = _run(["filter", image, tmp_path / "g.nii.gz", "--filter", "gradient_diffusion"], capsys)
    assert status == 0
    progress = [line.split("]")[0] for line in err.splitlines() if line.startswith("[")]
    assert len(progress) >= 3 and len(progress) == len(set(progress))


# ------------------------------------------------------------------------------------------ demo
def test_demo_validates_before_writing(tmp_path, capsys):
    out = tmp_path / "demo"
    status, _, err = _run(["demo", "--out", out, "--preset", "nope"], capsys)
    assert status == EXIT_USAGE and "Unknown preset 'nope'" in _one_line(err)
    status, _, err = _run(["demo", "--out", out, "--stenosis", "L4-L5=5000"], capsys)
    assert status == EXIT_USAGE
    assert not out.exists()


def test_demo_without_slicer_says_which_extra_to_install(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "slicer" else real(name, *a))
    out = tmp_path / "demo"
    status, _, err = _run(["demo", "--out", out], capsys)
    assert status == EXIT_USAGE and 'pip install "lumbarspine[slicer]"' in _one_line(err)
    assert not out.exists()


# ----------------------------------------------------------------------------- capability commands
def test_command_modules_errors_become_clear_lines(tmp_path, capsys, monkeypatch):
    module = types.ModuleType("lumbarspine_reliability_fake_command")
    module.NAME = "fake"

    def add_parser(subparsers):
        parser = subparsers.add_parser("fake", help="test command")
        parser.add_argument("--fail", choices=("value", "output", "bug", "none"), default="none")
        return parser

    def run(args):
        if args.fail == "value":
            raise ValueError("the level L9-L10 does not exist; use L1-L2 ... L5-S1.")
        if args.fail == "output":
            raise OutputError("Cannot write /x/grades.csv: the disk is full.")
        if args.fail == "bug":
            raise KeyError("oops")
        return 0

    module.add_parser, module.run = add_parser, run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", (module.__name__,))
    assert _run(["fake"], capsys)[0] == 0
    status, _, err = _run(["fake", "--fail", "value"], capsys)
    assert (
        status == EXIT_USAGE
        and _one_line(err) == "lumbarspine fake: error: the level L9-L10 does not exist; use L1-L2 ... L5-S1."
    )
    status, _, err = _run(["fake", "--fail", "output"], capsys)
    assert status == EXIT_OUTPUT and "disk is full" in _one_line(err)
    status, _, err = _run(["fake", "--fail", "bug", "-v"], capsys)
    assert status == 1 and "internal error: KeyError" in err.splitlines()[-1] and "Traceback" in err


# ------------------------------------------------------------- a real full / read-only file system
def _private_tmpfs_works() -> bool:
    """A tmpfs in a private user + mount namespace (``unshare -rm``): no root needed, gone with the process."""
    import shutil

    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _private_tmpfs_works(), reason="cannot mount a private tmpfs here (unshare -rm)")
@pytest.mark.parametrize(
    ("mount_options", "status", "cause"),
    [("size=128k", EXIT_OUTPUT, "disk is full"), ("size=1m,ro", EXIT_OUTPUT, "read-only")],
)
def test_real_full_and_read_only_file_systems(tmp_path, mount_options, status, cause):
    rng = np.random.default_rng(0)
    source = write_volume(Volume(rng.random((40, 64, 64)).astype(np.float32)), tmp_path / "in.nii")  # 655 kB
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out" / "smooth.nii"
    script = (
        f"mount -t tmpfs -o {mount_options} tmpfs {disk} && "
        f"PYTHONPATH={LIBRARY} {sys.executable} -m lumbarspine.cli filter {source} {out} --filter gaussian --quiet; "
        f"rc=$?; ls -A {disk}; find {disk} -type f | wc -l; exit $rc"
    )
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    assert proc.returncode == status, proc.stderr
    line = _one_line(proc.stderr)
    assert line.startswith("lumbarspine filter: error:") and cause in line
    assert proc.stdout.split()[-1] == "0"  # no file at all on that file system: nothing partial, no temporary


def test_real_ctrl_c_is_exit_130_and_leaves_nothing(tmp_path):
    import signal

    rng = np.random.default_rng(0)
    source = write_volume(Volume(rng.random((24, 48, 48)).astype(np.float32)), tmp_path / "in.nii.gz")
    out = tmp_path / "out" / "smooth.nii.gz"
    env = {**os.environ, "PYTHONPATH": LIBRARY}
    argv = ["filter", str(source), str(out), "--filter", "gradient_diffusion", "--iterations", "2000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lumbarspine.cli", *argv], stderr=subprocess.PIPE, text=True, env=env
    )
    for line in proc.stderr:  # wait until the work is under way
        if "diffusion iteration" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == EXIT_INTERRUPTED
    assert "lumbarspine filter: error: interrupted; no partial output was left." in rest
    assert "Traceback" not in rest
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
