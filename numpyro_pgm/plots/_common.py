"""Helpers shared by the plotting modules: validation, DataTree, style."""

import importlib
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..results import InferenceResult

BACKEND = "matplotlib"
MCMC = ("nuts", "hmc", "gibbs")


@contextmanager
def style():
    """Draw in the package's :data:`~numpyro_pgm.plots.STYLE` (read at call time)."""
    name = importlib.import_module(__package__).STYLE
    if name is None:
        yield
    else:
        with plt.style.context(name):
            yield


def check_result(result: Any, plot: str) -> InferenceResult:
    if not isinstance(result, InferenceResult):
        raise TypeError(
            f"plots.{plot} expects an InferenceResult from numpyro_pgm.fit or "
            f"numpyro_pgm.load; got {type(result).__name__}."
        )
    return result


def datatree(result: InferenceResult) -> xr.DataTree:
    """``to_datatree`` with an integer coordinate on every dimension that lacks one.

    arviz-plots selects panels by coordinate value and fails on a dimension that
    has none.
    """

    def with_coords(dataset: xr.Dataset) -> xr.Dataset:
        missing = {d: np.arange(n) for d, n in dataset.sizes.items()}
        return dataset.assign_coords(
            {d: v for d, v in missing.items() if d not in dataset.coords}
        )

    return result.to_datatree().map_over_datasets(with_coords)


def figure_of(plot_collection: Any) -> Figure:
    return plot_collection.get_viz("figure")


def require_group(result: InferenceResult, group: str, plot: str, fix: str) -> None:
    if group not in result.groups:
        raise ValueError(
            f"plots.{plot} needs the {group!r} group, which this {result.method!r} "
            f"result lacks (it has {sorted(result.groups)}). {fix}"
        )


def numeric_sites(variables: Mapping[str, np.ndarray]) -> list[str]:
    return [
        name
        for name, value in variables.items()
        if np.issubdtype(np.asarray(value).dtype, np.floating)
    ]


def select_var_names(
    variables: Mapping[str, np.ndarray],
    var_names: str | Sequence[str] | None,
    plot: str,
    group: str = "posterior",
) -> list[str]:
    """Validate ``var_names``; default to the float sites that fit in MAX_PANELS."""
    if var_names is not None:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
        unknown = [n for n in names if n not in variables]
        if unknown or not names:
            raise ValueError(
                f"var_names={var_names!r} for plots.{plot}: {unknown or 'empty'} not "
                f"in the {group!r} group; choose from {sorted(variables)}."
            )
        return names
    if group != "posterior":
        return list(variables)
    names, panels = [], 0
    for name in numeric_sites(variables):
        size = int(np.prod(np.shape(variables[name])[2:], dtype=int))
        if panels + size > max_panels():
            continue
        names.append(name)
        panels += size
    if not names:
        shapes = {k: np.shape(v)[2:] for k, v in variables.items()}
        raise ValueError(
            f"plots.{plot}: no continuous posterior site fits in "
            f"numpyro_pgm.plots.MAX_PANELS={max_panels()} panels (site shapes: "
            f"{shapes}). Pass var_names=[...] and coords={{dim: [...]}} to choose "
            "what to draw."
        )
    return names


def require_draws(result: InferenceResult, plot: str, *, chains: int = 1) -> None:
    if result.num_draws < 2:
        raise ValueError(
            f"plots.{plot} needs draws; this {result.method!r} result holds "
            f"{result.num_draws} draw per chain (the mode). Fit with "
            "method='laplace', 'svi' or 'nuts' for a distribution to plot."
        )
    if result.num_chains < chains:
        raise ValueError(
            f"plots.{plot} compares chains and needs at least {chains}; this "
            f"{result.method!r} result has {result.num_chains}. Fit with "
            "num_chains=4 (for SVI: independent restarts)."
        )


def num_components(result: InferenceResult, names: Sequence[str], coords) -> int:
    total = 0
    for name in names:
        dims = result.dims["posterior"][name][2:]
        shape = np.shape(result.samples[name])[2:]
        picked = [
            np.atleast_1d((coords or {}).get(d, range(n))) for d, n in zip(dims, shape)
        ]
        sizes = [len(p) for p in picked]
        total += int(np.prod(sizes, dtype=int))
    return total


def max_panels() -> int:
    """Return the package's :data:`~numpyro_pgm.plots.MAX_PANELS`, read now."""
    return int(importlib.import_module(__package__).MAX_PANELS)
