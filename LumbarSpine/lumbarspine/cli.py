"""The ``lumbarspine`` command line: phantom, filter, demo, backend.

Examples::

    lumbarspine phantom --out phantom/ --modality t2 --stenosis L4-L5=60,L3-L4=90 --spacing 0.6 0.6 4
    lumbarspine filter in.nii.gz out.nii.gz --filter gaussian --sigma 1.5 --backend auto
    lumbarspine filter in.nii.gz out.nii.gz --preset t2-canal
    lumbarspine demo --out output/demo
    lumbarspine backend

Errors in the input (bad path, unknown filter, bad parameter, NaN voxels, ...) end the command with
exit status 2 and one line saying what is wrong, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from .backend import BACKEND_CHOICES, BackendUnavailableError

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

COMMAND_MODULES: tuple[str, ...] = ("lumbarspine.planning.command",)
"""Library modules that add a subcommand each (``segment``, ``grade``, ``plan``, ...).

Each module defines ``NAME`` (the subcommand), ``add_parser(subparsers) -> ArgumentParser`` and
``run(args) -> int``; it lives in its capability's package (``lumbarspine.anatomy.command`` ...).
"""


def _command_modules() -> dict[str, Any]:
    import importlib

    return {module.NAME: module for module in (importlib.import_module(name) for name in COMMAND_MODULES)}


def _progress_printer(quiet: bool):
    def report(fraction: float, message: str) -> None:
        if not quiet:
            print(f"[{fraction * 100:5.1f} %] {message}", file=sys.stderr, flush=True)

    return report


def _parse_spacing(values: Sequence[float] | None) -> tuple[float, float, float] | None:
    if values is None:
        return None
    if len(values) == 1:
        return (float(values[0]),) * 3  # type: ignore[return-value]
    if len(values) == 3:
        return tuple(float(v) for v in values)  # type: ignore[return-value]
    raise ValueError(f"--spacing takes 1 or 3 numbers in mm (i j k); got {len(values)}.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumbarspine", description="LumbarSpine: lumbar spine imaging tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (backend choice, timings)")
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
    fi.add_argument("--quiet", action="store_true", help="no progress output")

    de = sub.add_parser("demo", help="phantom -> filter -> Slicer scene (.mrb), label map and 3D PNG")
    de.add_argument("--out", default="output/demo", help="output folder (default output/demo)")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--modality", choices=("ct", "t2"), default="ct")
    de.add_argument("--stenosis", action="append", default=[], help="as for 'phantom' (default L4-L5=60)")
    de.add_argument("--preset", default=None, help="use a filter chain instead of the default Gaussian")
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
    paths = write_phantom(args.out, PhantomSpec(**kwargs))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def _parse_filter_params(extra: list[str], parameters: Sequence[Any]) -> dict[str, Any]:
    known = {p.name: p for p in parameters}
    params: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise ValueError(f"Unexpected argument {token!r}: filter parameters are given as --NAME VALUE.")
        key = token[2:].replace("-", "_")
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra):
                raise ValueError(f"Parameter --{key} needs a value.")
            raw = extra[i + 1]
            i += 2
        if key not in known:
            names = ", ".join(f"--{name}" for name in known) or "none"
            raise ValueError(f"Unknown parameter --{key} for this filter; it takes: {names}.")
        default = getattr(known[key], "default", None)
        try:
            if isinstance(default, bool):
                value: Any = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = raw
        except ValueError as exc:
            raise ValueError(f"Parameter --{key} needs a number; got {raw!r}.") from exc
        params[key] = value
    return params


def _list_filters() -> None:
    from .filters import FILTERS, PRESETS

    for name, info in FILTERS.items():
        print(f"{name}: {getattr(info, 'title', '') or getattr(info, 'help', '')}")
        for p in info.params:
            units = p.unit or ""
            print(f"    --{p.name} (default {p.default}{' ' + units if units else ''}): {getattr(p, 'help', '')}")
    print("presets:")
    for name, preset in PRESETS.items():
        print(f"  {name}: {getattr(preset, 'title', '') or getattr(preset, 'description', '')}")


def _cmd_filter(args: argparse.Namespace, extra: list[str]) -> int:
    from .filters import FILTERS, apply_filter, apply_preset
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
    volume = read_volume(args.input)
    report = _progress_printer(args.quiet)
    start = time.perf_counter()
    if args.preset:
        if extra:
            raise ValueError(f"Presets take no filter parameters; got {' '.join(extra)}.")
        result = apply_preset(volume, args.preset, backend=args.backend, progress=report)
    else:
        if args.filter_name not in FILTERS:
            raise ValueError(f"Unknown filter {args.filter_name!r}: choose one of {', '.join(FILTERS)}.")
        params = _parse_filter_params(extra, FILTERS[args.filter_name].params)
        result = apply_filter(volume, args.filter_name, backend=args.backend, progress=report, **params)
    path = write_volume(result.volume, args.output)
    print(f"wrote {path} (backend {result.backend}, {time.perf_counter() - start:.2f} s)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .pipeline import run_demo

    summary = run_demo(
        args.out,
        seed=args.seed,
        modality=args.modality,
        stenosis=_stenosis_arg(args.stenosis),
        preset=args.preset,
        backend=args.backend,
        progress=_progress_printer(args.quiet),
    )
    print(json.dumps(summary["timings"]))
    print(f"backend: {summary['backend']}; filter: {summary['filter']}")
    for key, path in summary["paths"].items():
        print(f"{key:>10}: {path}")
    return 0


def _cmd_backend(args: argparse.Namespace) -> int:
    from .backend import select_backend

    print(select_backend(None))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if extra and args.command != "filter":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "phantom":
            return _cmd_phantom(args)
        if args.command == "filter":
            return _cmd_filter(args, extra)
        if args.command == "demo":
            return _cmd_demo(args)
        extra_commands = _command_modules()
        if args.command in extra_commands:
            return int(extra_commands[args.command].run(args))
        return _cmd_backend(args)
    except (ValueError, BackendUnavailableError) as exc:
        print(f"lumbarspine {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
