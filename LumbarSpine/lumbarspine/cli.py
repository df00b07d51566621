"""The ``lumbarspine`` command line: phantom, filter, demo, backend.

Examples::

    lumbarspine phantom --out phantom/ --modality t2 --stenosis L4-L5=60,L3-L4=90 --spacing 0.6 0.6 4
    lumbarspine filter in.nii.gz out.nii.gz --filter gaussian --sigma 1.5 --backend auto
    lumbarspine filter in.nii.gz out.nii.gz --preset t2-canal --set curvature_diffusion.iterations=8
    lumbarspine filter labels.nii.gz labels_05.nii.gz --filter resample --spacing 0.5   # labels stay labels
    lumbarspine demo --out output/demo
    lumbarspine backend

Every expected failure ends the command with one line on stderr (``lumbarspine CMD: error: ...``)
and a documented exit status; ``-v`` / ``--verbose`` (before or after the subcommand) also prints
the traceback:

====  ======================================================================================
0     success
1     an unexpected internal error (a bug: please report it with the ``-v`` output)
2     bad input or usage: unknown filter or parameter, value out of range, missing, damaged or
      unreadable input file, NaN voxels, output equal to the input without ``--overwrite``
3     the output could not be written (disk full, permission denied, read-only folder, a parent
      that is a file); nothing partial is left under the output name
4     not enough memory (checked before the work starts, with a suggestion)
130   interrupted (Ctrl-C) or cancelled
====  ======================================================================================

Arguments are checked before any work or output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backend import BACKEND_CHOICES, BackendUnavailableError
from .progress import OperationCancelled
from .safe_write import OutputError, describe_os_error

__all__ = [
    "main",
    "build_parser",
    "COMMAND_MODULES",
    "EXIT_OK",
    "EXIT_INTERNAL",
    "EXIT_USAGE",
    "EXIT_OUTPUT",
    "EXIT_MEMORY",
    "EXIT_INTERRUPTED",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_OUTPUT = 3
EXIT_MEMORY = 4
EXIT_INTERRUPTED = 130

COMMAND_MODULES: tuple[str, ...] = (
    "lumbarspine.anatomy.command",
    "lumbarspine.grading.command",
    "lumbarspine.planning.command",
)
"""Library modules that add a subcommand each (``segment``, ``grade``, ``plan``, ...).

Each module defines ``NAME`` (the subcommand), ``add_parser(subparsers) -> ArgumentParser`` and
``run(args) -> int``; it lives in its capability's package (``lumbarspine.anatomy.command`` ...).
``run`` raises ``ValueError`` for bad input and :class:`~lumbarspine.safe_write.OutputError` for files it
cannot write; :func:`main` turns those (and memory errors, Ctrl-C, cancellation) into one line and the
documented exit status. ``-v`` / ``--verbose`` is taken by :func:`main` wherever it appears, so a
subcommand must not define its own ``-v``; ``args.verbose`` tells ``run`` whether it was given.
"""


def _command_modules() -> dict[str, Any]:
    import importlib

    return {module.NAME: module for module in (importlib.import_module(name) for name in COMMAND_MODULES)}


def _progress_printer(quiet: bool):
    """Progress lines on stderr, one per new percentage (the library reports a step's start and end from
    several levels; repeating ``[100.0 %]`` three times helps nobody)."""
    last: list[str] = []

    def report(fraction: float, message: str) -> None:
        if quiet:
            return
        percent = f"{fraction * 100:5.1f}"
        if last and last[0] == percent:
            return
        last[:] = [percent]
        print(f"[{percent} %] {message}", file=sys.stderr, flush=True)

    return report


def _parse_spacing(values: Sequence[float] | None) -> tuple[float, float, float] | None:
    if values is None:
        return None
    if len(values) == 1:
        return (float(values[0]),) * 3  # type: ignore[return-value]
    if len(values) == 3:
        return tuple(float(v) for v in values)  # type: ignore[return-value]
    raise ValueError(f"--spacing takes 1 or 3 numbers in mm (i j k); got {len(values)}.")


_EPILOG = (
    "exit status: 0 success, 1 internal error (a bug), 2 bad input or usage, 3 output not written "
    "(disk full, permission, ...), 4 not enough memory, 130 interrupted or cancelled. "
    "-v/--verbose may come before or after the subcommand and adds the traceback to errors."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumbarspine", description="LumbarSpine: lumbar spine imaging tools.", epilog=_EPILOG
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log details (backend choice, timings) and tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ph = sub.add_parser("phantom", help="write the synthetic lumbar phantom (image, labels, truth.json)")
    ph.add_argument("--out", required=True, help="output folder")
    ph.add_argument("--seed", type=int, default=0, help="random seed (noise, bias field)")
    ph.add_argument("--modality", choices=("ct", "t2"), default="ct", help="CT in HU or T2-weighted MRI")
    ph.add_argument(
        "--stenosis",
        action="append",
        default=[],
        help="dural sac area in mm2 at disc levels, e.g. L4-L5=60,L3-L4=90 (repeatable)",
    )
    ph.add_argument("--spacing", type=float, nargs="+", help="voxel size in mm: one value or three (i j k)")
    ph.add_argument("--orientation", default=None, help="grid orientation (see 'lumbarspine phantom --help')")
    ph.add_argument(
        "--sac-fraction",
        action="store_true",
        help="also write sac_fraction.nii.gz, the dural sac's partial-volume map (for 'grade --sac-probability')",
    )

    fi = sub.add_parser(
        "filter",
        help="filter a volume file",
        description="Filter a volume. Filter parameters follow the filter name as --NAME VALUE "
        "(for example --sigma 1.5, in mm like SimpleITK's SmoothingRecursiveGaussian; --radius 1, in voxels "
        "like MedianImageFilter). 'lumbarspine filter --list' shows every filter, parameter and preset.",
    )
    fi.add_argument("input", nargs="?", help="input volume (.nii.gz, .nrrd, .mha or a DICOM folder)")
    fi.add_argument("output", nargs="?", help="output volume file")
    group = fi.add_mutually_exclusive_group()
    group.add_argument("--filter", dest="filter_name", help="filter name")
    group.add_argument("--preset", help="filter chain name")
    fi.add_argument("--backend", choices=BACKEND_CHOICES, default=None, help="auto (default), cupy or numpy")
    fi.add_argument("--list", action="store_true", help="list filters, parameters and presets, then exit")
    fi.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="STEP.PARAM=VALUE",
        help="override a preset parameter, e.g. --set curvature_diffusion.iterations=8 (repeatable); with "
        "--filter, PARAM=VALUE",
    )
    fi.add_argument("--overwrite", action="store_true", help="allow the output to replace the input file")
    fi.add_argument(
        "--allow-nonuniform",
        action="store_true",
        help="DICOM input with a missing slice or uneven slice gaps: resample it onto an even grid instead of "
        "refusing it",
    )
    fi.add_argument("--quiet", action="store_true", help="no progress output")

    de = sub.add_parser("demo", help="phantom -> filter -> Slicer scene (.mrb), label map and 3D PNG")
    de.add_argument("--out", default="output/demo", help="output folder (default output/demo)")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--modality", choices=("ct", "t2"), default="ct")
    de.add_argument("--stenosis", action="append", default=[], help="as for 'phantom' (default L4-L5=60)")
    de.add_argument("--preset", default=None, help="use a filter chain instead of the default Gaussian")
    de.add_argument("--spacing", type=float, nargs="+", help="phantom voxel size in mm: one value or three (i j k)")
    de.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    de.add_argument("--quiet", action="store_true")

    sub.add_parser("backend", help="say which array backend 'auto' picks here, and why")
    for module in _command_modules().values():
        module.add_parser(sub)
    return parser


def _stenosis_arg(values: list[str]) -> dict[str, float] | None:
    if not values:
        return None
    from .phantom import parse_stenosis

    merged: dict[str, float] = {}
    for value in values:
        merged.update(parse_stenosis(value))
    return merged


def _cmd_phantom(args: argparse.Namespace) -> int:
    from .phantom import ORIENTATIONS, PhantomSpec, write_phantom

    kwargs: dict[str, Any] = {"seed": args.seed, "modality": args.modality}
    stenosis = _stenosis_arg(args.stenosis)
    if stenosis is not None:
        kwargs["stenosis"] = stenosis
    spacing = _parse_spacing(args.spacing)
    if spacing is not None:
        kwargs["spacing"] = spacing
    if args.orientation is not None:
        if args.orientation not in ORIENTATIONS:
            raise ValueError(f"Unknown orientation {args.orientation!r}: choose one of {', '.join(ORIENTATIONS)}.")
        kwargs["orientation"] = args.orientation
    spec = PhantomSpec(**kwargs)  # validated before anything is written
    _check_writable_folder(Path(args.out))
    paths = write_phantom(args.out, spec, sac_fraction=args.sac_fraction)
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _convert(param: Any, key: str, raw: Any) -> Any:
    """A command-line string -> the parameter's type (numbers, strict booleans, volumes from files)."""
    kind = getattr(param, "kind", "")
    if kind == "volume":
        from .io import read_volume

        return read_volume(raw, is_label=True)
    if kind == "bool":
        word = str(raw).lower()
        if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"Parameter --{key} takes true or false (also yes/no, on/off, 1/0); got {raw!r}.")
        return word in ("1", "true", "yes", "on")
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ValueError(
                f"Parameter --{key} needs {'a whole number' if kind == 'int' else 'a number'}; got {raw!r}."
            ) from None
    if kind == "spacing":
        values = raw if isinstance(raw, list) else [raw]
        if not all(_is_number(v) for v in values):
            raise ValueError(f"Parameter --{key} needs a number in mm (or three: i j k); got {' '.join(values)!r}.")
        nums = [float(v) for v in values]
        return nums[0] if len(nums) == 1 else nums
    return raw


def _parse_filter_params(extra: list[str], parameters: Sequence[Any]) -> dict[str, Any]:
    """``--NAME VALUE`` / ``--NAME=VALUE`` pairs for the filter's parameters (spacing: one or three numbers)."""
    known = {p.name: p for p in parameters}
    params: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise ValueError(f"Unexpected argument {token!r}: filter parameters are given as --NAME VALUE.")
        name_part, has_value, raw = token[2:].partition("=")
        key = name_part.replace("-", "_")  # --out-min == --out_min; the value keeps its minus sign
        if key not in known:
            names = ", ".join(f"--{name}" for name in known) or "none"
            raise ValueError(f"Unknown parameter --{key} for this filter; it takes: {names}.")
        if has_value:
            raw_value: Any = raw.split(",") if known[key].kind == "spacing" else raw
            i += 1
        else:
            if i + 1 >= len(extra):
                raise ValueError(f"Parameter --{key} needs a value.")
            if known[key].kind == "spacing":
                j = i + 1
                while j < len(extra) and j < i + 4 and _is_number(extra[j]):
                    j += 1
                raw_value = extra[i + 1 : j] or [extra[i + 1]]
                if len(raw_value) == 2:
                    raise ValueError(f"Parameter --{key} takes one number (isotropic) or three (i j k) in mm; got 2.")
                i = max(j, i + 2)
            else:
                raw_value = extra[i + 1]
                i += 2
        params[key] = _convert(known[key], key, raw_value)
    return params


def _parse_overrides(values: list[str], preset: str | None) -> dict[str, dict[str, Any]]:
    """``--set STEP.PARAM=VALUE`` (preset) or ``--set PARAM=VALUE`` (filter) -> ``{step: {param: value}}``."""
    from .filters import FILTERS

    out: dict[str, dict[str, Any]] = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"--set takes STEP.PARAM=VALUE (e.g. curvature_diffusion.iterations=8); got {item!r}.")
        key, raw = item.split("=", 1)
        if preset:
            if "." not in key:
                raise ValueError(
                    f"--set with a preset takes STEP.PARAM=VALUE (the step is a filter name); got {item!r}."
                )
            step, name = key.split(".", 1)
        else:
            step, name = "", key
        info = FILTERS.get(step) if step else None
        params = {p.name: p for p in info.params} if info else {}
        raw_value: Any = raw.split(",") if getattr(params.get(name), "kind", "") == "spacing" else raw
        value = _convert(params[name], name, raw_value) if name in params else raw
        out.setdefault(step, {})[name] = value
    return out


def _describe_param(p: Any) -> str:
    bits = []
    if p.kind == "choice":
        bits.append("one of " + "/".join(p.choices))
    elif p.kind == "bool":
        bits.append("true/false")
    elif p.kind == "volume":
        bits.append("a volume file on the same grid")
    elif p.minimum is not None or p.maximum is not None:
        lo = "-inf" if p.minimum is None else f"{p.minimum:g}"
        hi = "inf" if p.maximum is None else f"{p.maximum:g}"
        bits.append(f"{lo} .. {hi}{' ' + p.unit if p.unit else ''}")
    if p.kind == "spacing":
        bits.append("one number or three (i j k)")
    default = p.default
    shown = "none" if default is None else (f"{default:g}" if isinstance(default, float) else str(default))
    bits.append(f"default {shown}{' ' + p.unit if p.unit and p.kind not in ('choice', 'bool') else ''}")
    return "; ".join(bits)


def _list_filters() -> None:
    from .filters import FILTERS, PRESETS

    for name, info in FILTERS.items():
        print(f"{name}: {info.title}. {info.help}")
        for p in info.params:
            print(f"    --{p.name} ({_describe_param(p)}): {p.help}")
    print("presets (parameters: --set STEP.PARAM=VALUE):")
    for name, preset in PRESETS.items():
        print(f"  {name}: {preset.title}. {preset.help}")
        for step, params in preset.steps:
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            print(f"    {step}: {shown or 'defaults'}")


def _check_output_file(path: str, inputs: Sequence[str], overwrite: bool) -> None:
    """Before any work: the output is a writable file path and not one of the inputs (unless ``overwrite``)."""
    from .io import SUPPORTED_SUFFIXES, _suffix, same_file
    from .safe_write import check_output_path

    out = Path(path)
    if _suffix(out) not in SUPPORTED_SUFFIXES:
        raise ValueError(f"Cannot write {out.name!r}: give the output one of {', '.join(SUPPORTED_SUFFIXES)}.")
    for source in inputs:
        if source and same_file(source, out) and not overwrite:
            raise ValueError(
                f"The output {out} is the input file {source}: inputs are never modified. Choose another output, "
                "or pass --overwrite to replace it."
            )
    check_output_path(out)
    _check_writable_folder(out.parent)


def _check_writable_folder(folder: Path) -> None:
    """The nearest existing folder at or above ``folder`` accepts new files (probed by creating one)."""
    from .safe_write import check_output_path

    check_output_path(folder / "probe")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    probe = existing / f".lumbarspine-probe-{os.getpid()}"
    try:
        with open(probe, "wb"):
            pass
    except OSError as exc:
        raise OutputError(f"Cannot write into {existing}: {describe_os_error(exc)}.") from exc
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def _cmd_filter(args: argparse.Namespace, extra: list[str]) -> int:
    from .filters import FILTERS, apply_filter, apply_preset
    from .filters.registry import resolve_preset, validate_params
    from .io import read_volume, write_volume

    if args.list:
        _list_filters()
        return 0
    if not args.input or not args.output:
        raise ValueError(
            "Give an input and an output file: lumbarspine filter IN OUT --filter NAME [--param value ...]"
        )
    if not args.filter_name and not args.preset:
        raise ValueError("Choose --filter NAME or --preset NAME ('lumbarspine filter --list' shows them).")
    # everything is checked before reading the input or writing anything
    overrides = _parse_overrides(args.overrides, args.preset)
    if args.preset:
        if extra:
            raise ValueError(
                f"Presets take their parameters as --set STEP.PARAM=VALUE (e.g. --set curvature_diffusion."
                f"iterations=8); got {' '.join(extra)}."
            )
        resolve_preset(args.preset, overrides)
    else:
        if args.filter_name not in FILTERS:
            raise ValueError(f"Unknown filter {args.filter_name!r}: choose one of {', '.join(FILTERS)}.")
        params = _parse_filter_params(extra, FILTERS[args.filter_name].params)
        params.update(overrides.get("", {}))
        validate_params(FILTERS[args.filter_name], params)
    if not Path(args.input).exists():
        raise ValueError(f"No such file or folder: {args.input}. Check the path.")
    _check_output_file(args.output, [args.input], args.overwrite)

    volume = read_volume(args.input, allow_nonuniform=args.allow_nonuniform)
    report = _progress_printer(args.quiet)
    start = time.perf_counter()
    if args.preset:
        result = apply_preset(volume, args.preset, backend=args.backend, progress=report, overrides=overrides)
    else:
        result = apply_filter(volume, args.filter_name, backend=args.backend, progress=report, **params)
    path = write_volume(result.volume, args.output)
    print(f"wrote {path} ({result.message}; {time.perf_counter() - start:.2f} s in all)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .pipeline import check_demo_arguments, run_demo

    kwargs: dict[str, Any] = {
        "seed": args.seed,
        "modality": args.modality,
        "stenosis": _stenosis_arg(args.stenosis),
        "preset": args.preset,
        "backend": args.backend,
    }
    spacing = _parse_spacing(args.spacing)
    if spacing is not None:
        kwargs["spacing"] = spacing
    check_demo_arguments(args.out, **kwargs)
    _check_writable_folder(Path(args.out))
    summary = run_demo(args.out, progress=_progress_printer(args.quiet), **kwargs)
    print(json.dumps(summary["timings"]))
    print(f"backend: {summary['backend']}; filter: {summary['filter']}")
    for key, path in summary["paths"].items():
        print(f"{key:>10}: {path}")
    for kind, seg in summary.get("segmentation", {}).items():
        print(
            f"segmentation {kind} (automatic, no labels used): levels {', '.join(seg['levels'])}; "
            f"numbered from {seg['numbering'] or 'nothing (unnumbered)'}; canal Dice {seg['canal_dice']:.3f}"
        )
    print("grading (automatic T2 segmentation):")
    print(f"  {'level':<7}{'area mm2':>9}{'AP mm':>7}  {'grade':<12}{'confidence':>10}")
    for level in summary.get("grading", {}).get("levels", []):
        if level["dural_sac_area_mm2"] is not None:
            print(
                f"  {level['level']:<7}{level['dural_sac_area_mm2']:9.1f}{level['ap_diameter_mm']:7.1f}  "
                f"{level['central_canal_grade']:<12}{level['confidence']:10.2f}"
            )
        else:
            print(f"  {level['level']:<7} not measured: {level.get('reason', '')}")
    plan_json = summary.get("plan", {}).get("paths", {}).get("plan")
    if plan_json:
        plan = json.loads(Path(plan_json).read_text(encoding="utf-8"))
        print("plan (automatic CT segmentation):")
        print(f"  {'screw':<10}{'diam mm':>8}{'len mm':>7}{'medial':>8}  grade")
        for screw in plan["screws"]:
            print(
                f"  {screw['vertebra'] + ' ' + screw['side']:<10}{screw['diameter_mm']:8.1f}{screw['length_mm']:7.0f}"
                f"{screw['medial_angle_deg']:7.1f}°  {screw['gertzbein_robbins']}"
            )
        for refused in plan.get("refused_screws", []):
            print(f"  {refused.get('vertebra', '')} {refused.get('side', '')}: refused ({refused.get('reason', '')})")
        for dec in plan.get("decompressions", []):
            print(
                f"  decompression {dec.get('level')}: {dec.get('bone_volume_cm3', 0):.2f} cm3 bone, "
                f"canal {dec.get('canal_area_before_mm2', 0):.0f} -> {dec.get('canal_area_after_mm2', 0):.0f} mm2"
            )
    return 0


def _cmd_backend(args: argparse.Namespace) -> int:
    from .backend import select_backend

    print(select_backend(None))
    return 0


def _split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """Take ``-v`` / ``--verbose`` out of ``argv`` wherever it is (before ``--``), so it works after the subcommand."""
    out, verbose, rest = [], False, False
    for token in argv:
        if not rest and token in ("-v", "--verbose"):
            verbose = True
            continue
        if token == "--":
            rest = True
        out.append(token)
    return out, verbose


def _error(command: str, message: str, verbose: bool, status: int) -> int:
    if verbose:
        traceback.print_exc(file=sys.stderr)
    text = " ".join(str(message).split()) or "unknown error"
    print(f"lumbarspine {command}: error: {text}", file=sys.stderr, flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    argv, verbose = _split_verbose(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    verbose = verbose or bool(getattr(args, "verbose", False))
    args.verbose = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    if extra and args.command != "filter":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = args.command
    try:
        if command == "phantom":
            return _cmd_phantom(args)
        if command == "filter":
            return _cmd_filter(args, extra)
        if command == "demo":
            return _cmd_demo(args)
        extra_commands = _command_modules()
        if command in extra_commands:
            return int(extra_commands[command].run(args))
        return _cmd_backend(args)
    except OutputError as exc:  # before ValueError: OutputError is one
        return _error(command, str(exc), verbose, EXIT_OUTPUT)
    except (KeyboardInterrupt, OperationCancelled) as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or "cancelled"
        return _error(command, f"{what}; no partial output was left.", verbose, EXIT_INTERRUPTED)
    except MemoryError as exc:
        message = str(exc) or "out of memory"
        if "memory" not in message.lower():
            message = f"out of memory ({message})"
        if "free memory" not in message:
            message = message.rstrip(".") + ". Use a smaller (cropped or coarser) volume or free memory."
        return _error(command, message, verbose, EXIT_MEMORY)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("slicer", "vtk"):
            return _error(
                command,
                f"this command needs the headless Slicer core ({exc.name} is missing): pip install "
                '"lumbarspine[slicer]" (slicer-core).',
                verbose,
                EXIT_USAGE,
            )
        return _error(command, f"internal error: {exc}. Run with -v for the traceback.", verbose, EXIT_INTERNAL)
    except (ValueError, BackendUnavailableError) as exc:
        return _error(command, str(exc), verbose, EXIT_USAGE)
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return _error(command, f"{describe_os_error(exc)}{where}.", verbose, EXIT_OUTPUT)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        return _error(
            command,
            f"internal error: {type(exc).__name__}: {exc}. Run with -v for the traceback and report it.",
            verbose,
            EXIT_INTERNAL,
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
