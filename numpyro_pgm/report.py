"""A folder with the figures and a Markdown summary of one or several results.

:func:`report` draws, for each result, the plots of :mod:`numpyro_pgm.plots` that
apply to its method, and writes ``summary.md``: the convergence checks, the
arviz-stats summary statistics, the method comparison when there are two or more
results, and links to the figures. Everything is first written into a hidden
temporary folder inside ``out_dir`` and moved into place at the end, ``summary.md``
last; a failure removes what was written, so no half-written report is left.
"""

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from .compare import compare, label_results, markdown_table
from .diagnostics import check
from .results import InferenceResult

__all__ = ["report"]

SUMMARY = "summary.md"
_MCMC = ("nuts", "hmc", "gibbs")
_DPI = 100


def report(
    results: InferenceResult
    | Sequence[InferenceResult]
    | Mapping[str, InferenceResult],
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    figures: bool = True,
    var_names: str | Sequence[str] | None = None,
) -> Path:
    """Write figures (PNG) and ``summary.md`` for one or several results.

    Parameters
    ----------
    results : InferenceResult, or sequence or mapping of them
        One result, or several fits of the same model (labelled by method, repeats
        numbered ``"svi-2"``, or by the keys of a mapping).
    out_dir : str or path-like
        The folder to write into; created (with its parents) if needed. Files of
        the same names are replaced.
    title : str, optional
        The heading of ``summary.md``; by default "Inference report".
    figures : bool
        Draw the figures; ``False`` writes ``summary.md`` alone.
    var_names : str or sequence of str, optional
        Posterior sites to summarise, compare and plot; by default the plots choose
        (see :data:`numpyro_pgm.plots.MAX_PANELS`) and the tables hold every site.

    Returns
    -------
    pathlib.Path
        The path of ``summary.md``.

    Raises
    ------
    ValueError
        If ``out_dir`` is not a folder that can be created and written to; nothing
        is left behind.
    """
    labelled = (
        {results.method: results}
        if isinstance(results, InferenceResult)
        else label_results(results, "report")
    )
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None; got {type(title).__name__}.")
    out_dir = Path(out_dir)
    created = _make_folder(out_dir)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    except OSError as error:
        _remove_created(created)
        raise ValueError(_unwritable(out_dir, error)) from error
    moved: list[Path] = []
    try:
        pictures, skipped = {}, {}
        if figures:
            pictures, skipped = _draw_all(labelled, staging, var_names)
        text = _summary(labelled, title, pictures, skipped, var_names)
        (staging / SUMMARY).write_text(text, encoding="utf-8")
        names = [name for files in pictures.values() for _, name in files] + [SUMMARY]
        for name in names:
            os.replace(staging / name, out_dir / name)
            moved.append(out_dir / name)
    except BaseException as error:
        for path in moved:
            path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        _remove_created(created)
        if isinstance(error, PermissionError):
            raise ValueError(_unwritable(out_dir, error)) from error
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return out_dir / SUMMARY


def _unwritable(out_dir: Path, error: OSError) -> str:
    return (
        f"out_dir={str(out_dir)!r} cannot be written to ({error.strerror or error}). "
        "Pass a folder you may write to, e.g. one under your home or a temporary "
        "folder."
    )


def _make_folder(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and missing parents; return those created, outermost first."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"out_dir={str(out_dir)!r} is a file, not a folder; pass a folder path."
        )
    missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()][::-1]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_created([p for p in missing if p.exists()])
        raise ValueError(_unwritable(out_dir, error)) from error
    return missing


def _remove_created(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "result"


def _draw_all(labelled, staging: Path, var_names):
    from . import plots  # matplotlib and arviz-plots: imported on first use

    """Save each applicable figure; return {label: [(plot, file)]} and skips."""
    pictures: dict[str, list[tuple[str, str]]] = {}
    skipped: dict[str, list[tuple[str, str]]] = {}
    for label, result in labelled.items():
        pictures[label], skipped[label] = [], []
        for plot in plots.applicable(result):
            options = {}
            if var_names is not None and plot in ("trace", "rank", "pair", "ess"):
                options["var_names"] = var_names
            name = f"{_safe(label)}_{plot}.png"
            drawn = _save(
                lambda p=plot, r=result, o=options: getattr(plots, p)(r, **o),
                staging / name,
            )
            if isinstance(drawn, str):
                skipped[label].append((plot, drawn))
            else:
                pictures[label].append((plot, name))
    if len(labelled) >= 2:
        drawn = _save(
            lambda: plots.methods(labelled, var_names=var_names),
            staging / "methods.png",
        )
        key = "__methods__"
        pictures[key], skipped[key] = [], []
        if isinstance(drawn, str):
            skipped[key].append(("methods", drawn))
        else:
            pictures[key].append(("methods", "methods.png"))
    return pictures, skipped


def _save(draw, path: Path) -> bool | str:
    import matplotlib.pyplot as plt

    """Draw and save a figure; return True, or the reason it does not apply."""
    try:
        figure = draw()
    except ValueError as error:
        return str(error)
    try:
        figure.savefig(path, dpi=_DPI)
    finally:
        plt.close(figure)
    return True


def _summary(labelled, title, pictures, skipped, var_names) -> str:
    import pandas as pd

    lines = [f"# {title or 'Inference report'}", ""]
    overview = pd.DataFrame(
        [
            {
                "method": result.method,
                "chains": result.num_chains,
                "draws": result.num_draws,
                "time_s": result.timings.get("total", float("nan")),
                "checks": "passed" if check(result).passed else "FAILED",
            }
            for result in labelled.values()
        ],
        index=pd.Index(list(labelled), name="result"),
    )
    lines += [markdown_table(overview), ""]
    for label, result in labelled.items():
        lines += [f"## {label} ({result.method})", "", check(result).to_markdown(), ""]
        lines += ["### Posterior summary", "", _stats_table(result, var_names), ""]
        lines += _figure_lines(pictures.get(label, []), skipped.get(label, []))
    if len(labelled) >= 2:
        comparison = compare(labelled, _reference(labelled), var_names=var_names)
        lines += ["## Comparison of methods", "", comparison.to_markdown(), ""]
        lines += _figure_lines(
            pictures.get("__methods__", []), skipped.get("__methods__", [])
        )
    return "\n".join(lines).rstrip() + "\n"


def _reference(labelled) -> int:
    methods = [r.method for r in labelled.values()]
    return next((i for i, m in enumerate(methods) if m in _MCMC), 0)


def _stats_table(result: InferenceResult, var_names) -> str:
    import arviz_stats as azs

    kind = "all" if result.method in _MCMC and result.num_draws >= 4 else "stats"
    with warnings.catch_warnings():
        # One chain or one draw gives NaN diagnostics; the table shows them blank.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        table = azs.summary(
            result.to_datatree(), var_names=var_names, kind=kind, round_to="none"
        )
    table.index.name = "parameter"
    return markdown_table(table)


def _figure_lines(pictures, skipped) -> list[str]:
    lines = []
    if pictures:
        lines += ["### Figures", ""]
        lines += [f"![{plot}]({name})" for plot, name in pictures]
        lines.append("")
    if skipped:
        lines += ["Not drawn:", ""]
        lines += [f"- {plot}: {reason}" for plot, reason in skipped]
        lines.append("")
    return lines
