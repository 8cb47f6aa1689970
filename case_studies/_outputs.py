"""What every case study writes besides its own numbers: figures and the report link.

The figures go into the output folder as PNGs; the project's standard report
(:func:`numpyro_pgm.report`) of the fits goes into ``diagnostics/``, and the case
study's ``summary.md`` links it with a short description.
"""

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

import numpyro_pgm as pgm


def save_figures(figures: Mapping[str, Any], out_dir: Path, *, dpi: int = 120) -> None:
    """Save each figure as ``out_dir / name`` and close it."""
    for name, figure in figures.items():
        figure.savefig(out_dir / name, dpi=dpi)
        plt.close(figure)


def diagnostics_section(
    fits: Mapping[str, Any],
    out_dir: Path,
    *,
    title: str,
    var_names: Sequence[str],
    description: str,
) -> str:
    """Write the standard report of ``fits`` into ``out_dir / "diagnostics"``.

    Returns the Markdown section of ``summary.md`` that links it: a heading, then
    ``description`` followed by the link.
    """
    path = pgm.report(
        fits, out_dir / "diagnostics", title=title, var_names=list(var_names)
    )
    link = path.relative_to(out_dir)
    return f"\n## Diagnostics\n\n{description}: [{link}]({link}).\n"


def fit_and_report(
    args: argparse.Namespace,
    fit: Callable[[argparse.Namespace], Any],
    report: Callable[[Any, str | Path], Any],
    *,
    written: str = "summary.md and figures",
) -> Any:
    """Run ``report(fit(args), args.out_dir)``, say what it wrote and how long it took.

    Returns what ``report`` returns (the case study's metrics).
    """
    start = time.perf_counter()
    metrics = report(fit(args), args.out_dir)
    print(f"Wrote {written} to {args.out_dir} ({time.perf_counter() - start:.0f} s).")
    return metrics
