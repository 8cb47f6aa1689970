"""The ``numpyro-pgm`` command.

::

    numpyro-pgm list                                  models, data sets, case studies
    numpyro-pgm run CASE_STUDY [case-study flags]     e.g. --quick --out-dir results/x
    numpyro-pgm check RESULT.nc                       exit status 1 if a check fails
    numpyro-pgm report RESULT.nc --out-dir DIR        figures and summary.md

Exit status: 0 success, 1 a convergence check failed (``check``) or the case study
failed, 2 bad input (unknown case study, a file that is not a saved result, an output
folder that cannot be written).

JAX's persistent compilation cache is on (as for every use of ``numpyro_pgm``,
see :mod:`numpyro_pgm._compilation_cache`), in ``$NUMPYRO_PGM_CACHE_DIR`` (default
``~/.cache/numpyro_pgm/jax``) or ``--cache-dir``, so a second run of the same case
study compiles nothing again; ``--no-cache`` turns it off.
"""

import argparse
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ._compilation_cache import (
    _ENVIRONMENT as _CACHE_ENVIRONMENT,
)
from ._compilation_cache import (
    DEFAULT_CACHE_DIR,
    disable_compilation_cache,
    enable_compilation_cache,
)

__all__ = ["main", "enable_compilation_cache", "case_studies", "DEFAULT_CACHE_DIR"]


class _BadInput(Exception):
    """Bad input on the command line: reported, then exit status 2."""


def case_studies() -> dict[str, str]:
    """Return the installed case studies: name to the first line of its docstring."""
    import numpyro_pgm.case_studies as package

    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        spec = importlib.util.find_spec(f"{package.__name__}.{module.name}")
        found[module.name] = _first_docstring_line(Path(spec.origin))
    return found


def _first_docstring_line(path: Path) -> str:
    import ast

    try:
        docstring = ast.get_docstring(ast.parse(path.read_text()))
    except (OSError, SyntaxError):
        return ""
    return (docstring or "").strip().splitlines()[0] if docstring else ""


def _models() -> list[str]:
    import numpyro_pgm.models as package

    return sorted(m.name for m in pkgutil.iter_modules(package.__path__))


def _command_list(_: argparse.Namespace) -> int:
    from numpyro_pgm import datasets

    lines = ["Models (numpyro_pgm.models):"]
    lines += [f"  {name}" for name in _models() if not name.startswith("_")]
    lines.append("Data sets (numpyro_pgm.datasets.load):")
    lines += [f"  {name}" for name in datasets.list_datasets()]
    lines.append("Case studies (numpyro-pgm run NAME):")
    lines += [f"  {name:28s} {line}" for name, line in case_studies().items()]
    print("\n".join(lines))
    return 0


def _command_run(arguments: argparse.Namespace, extra: list[str]) -> int:
    available = case_studies()
    if arguments.case_study not in available:
        raise _BadInput(
            f"unknown case study {arguments.case_study!r}; available: "
            f"{', '.join(sorted(available)) or 'none'}. See `numpyro-pgm list`."
        )
    out_dir = _out_dir_from(extra)
    if out_dir is not None:
        _check_writable(out_dir)
    module = importlib.import_module(f"numpyro_pgm.case_studies.{arguments.case_study}")
    module.main(extra)
    return 0


def _out_dir_from(extra: list[str]) -> Path | None:
    for index, token in enumerate(extra):
        if token == "--out-dir" and index + 1 < len(extra):
            return Path(extra[index + 1])
        if token.startswith("--out-dir="):
            return Path(token.split("=", 1)[1])
    return None


def _check_writable(out_dir: Path) -> None:
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise _BadInput(
            f"cannot write to the output folder {str(out_dir)!r}: {str(existing)!r} "
            "is not a writable folder. Choose another --out-dir."
        )


def _load_result(path: str):
    from numpyro_pgm import load

    try:
        return load(path)
    except ValueError as error:
        raise _BadInput(str(error)) from error


def _command_check(arguments: argparse.Namespace) -> int:
    from numpyro_pgm import check

    report = check(_load_result(arguments.result))
    print(report.to_markdown())
    return 0 if report.passed else 1


def _command_report(arguments: argparse.Namespace) -> int:
    from numpyro_pgm import report

    result = _load_result(arguments.result)
    out_dir = Path(arguments.out_dir)
    _check_writable(out_dir)
    written = report([result], out_dir)
    print(f"wrote {written}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numpyro-pgm",
        description="Classic generative models on NumPyro: case studies, checks and "
        "reports.",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"compilation cache folder (default ${_CACHE_ENVIRONMENT} or "
        f"{DEFAULT_CACHE_DIR})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list models, data sets and case studies")
    run = commands.add_parser(
        "run",
        help="run a case study; other flags go to it (e.g. --quick --out-dir DIR)",
    )
    run.add_argument("case_study")
    check = commands.add_parser(
        "check", help="convergence checks of a saved result (exit 1 on failure)"
    )
    check.add_argument("result", help="a .nc file written by InferenceResult.save")
    report = commands.add_parser("report", help="figures and summary.md of a result")
    report.add_argument("result", help="a .nc file written by InferenceResult.save")
    report.add_argument("--out-dir", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``numpyro-pgm`` command; return its exit status."""
    parser = _parser()
    arguments, extra = parser.parse_known_args(argv)
    if extra and arguments.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if arguments.no_cache:
        disable_compilation_cache()
    elif arguments.cache_dir is not None:
        try:
            enable_compilation_cache(arguments.cache_dir)
        except ValueError as error:
            print(f"numpyro-pgm: error: --cache-dir: {error}", file=sys.stderr)
            return 2
    try:
        if arguments.command == "list":
            return _command_list(arguments)
        if arguments.command == "run":
            return _command_run(arguments, extra)
        if arguments.command == "check":
            return _command_check(arguments)
        return _command_report(arguments)
    except _BadInput as error:
        print(f"numpyro-pgm: error: {error}", file=sys.stderr)
        return 2


def console_main() -> None:  # pragma: no cover - the installed script
    """Entry point of the installed ``numpyro-pgm`` script."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
