"""Sampler and optimiser diagnostics: trace, rank, pair, energy, ESS, ELBO."""

from collections.abc import Mapping, Sequence
from typing import Any

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..results import InferenceResult
from ._common import (
    BACKEND,
    check_result,
    datatree,
    figure_of,
    num_components,
    require_draws,
    select_var_names,
    style,
)

__all__ = ["elbo", "energy", "ess", "pair", "rank", "trace"]

_RANK_METHOD = "mtc_c"  # arviz-plots' multi-chain uniformity test: needs 2+ chains


def trace(
    result: InferenceResult,
    *,
    var_names: str | Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> Figure:
    """Trace and marginal density of each parameter, per chain.

    Divergent transitions of NUTS/HMC are marked on the traces.

    Parameters
    ----------
    result : InferenceResult
        A result with two or more draws per chain.
    var_names : str or sequence of str, optional
        Posterior sites to draw; by default the continuous sites, up to
        :data:`MAX_PANELS` panels.
    coords : mapping, optional
        Coordinate values to select, by dimension name, e.g. ``{"point": [0, 1]}``.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_trace_dist`.
    """
    check_result(result, "trace")
    require_draws(result, "trace")
    names = select_var_names(result.samples, var_names, "trace")
    with style():
        plot_collection = azp.plot_trace_dist(
            datatree(result), var_names=names, coords=coords, backend=BACKEND
        )
    return figure_of(plot_collection)


def rank(
    result: InferenceResult,
    *,
    var_names: str | Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> Figure:
    """Rank ECDFs of each chain against uniformity (chains that disagree stand out).

    For SVI, chains are independent restarts: the plot shows restarts that found
    different optima.

    Parameters
    ----------
    result : InferenceResult
        A result with at least two chains (or restarts).
    var_names : str or sequence of str, optional
        Posterior sites to draw; by default the continuous sites, up to
        :data:`MAX_PANELS` panels.
    coords : mapping, optional
        Coordinate values to select, by dimension name.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_rank`.
    """
    check_result(result, "rank")
    require_draws(result, "rank", chains=2)
    names = select_var_names(result.samples, var_names, "rank")
    with style():
        plot_collection = azp.plot_rank(
            datatree(result),
            var_names=names,
            coords=coords,
            method=_RANK_METHOD,
            backend=BACKEND,
        )
    return figure_of(plot_collection)


def pair(
    result: InferenceResult,
    *,
    var_names: str | Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> Figure:
    """Scatter of every pair of scalar parameters, with marginals on the diagonal.

    Divergent transitions of NUTS/HMC are drawn as separate markers, so funnels and
    ridges where the sampler failed stand out.

    Parameters
    ----------
    result : InferenceResult
        A result with two or more draws and two or more scalar parameters.
    var_names : str or sequence of str, optional
        Posterior sites to draw; by default the continuous sites, up to
        :data:`MAX_PANELS` scalar components.
    coords : mapping, optional
        Coordinate values to select, by dimension name.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_pair`.
    """
    check_result(result, "pair")
    require_draws(result, "pair")
    names = select_var_names(result.samples, var_names, "pair")
    if num_components(result, names, coords) < 2:
        raise ValueError(
            f"plots.pair needs at least two scalar parameters; var_names={names} "
            f"with coords={coords} select {num_components(result, names, coords)}. "
            "Add sites to var_names, or use plots.trace for a single parameter."
        )
    divergences = "diverging" in result.sample_stats
    with style():
        plot_matrix = azp.plot_pair(
            datatree(result),
            var_names=names,
            coords=coords,
            visuals={"divergence": divergences},
            backend=BACKEND,
        )
    return figure_of(plot_matrix)


def energy(result: InferenceResult) -> Figure:
    """Marginal energy and energy-transition distributions of NUTS/HMC, with E-BFMI.

    Parameters
    ----------
    result : InferenceResult
        A ``method="nuts"`` or ``"hmc"`` result (its ``energy`` sample statistic).

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_energy`.
    """
    check_result(result, "energy")
    if "energy" not in result.sample_stats:
        raise ValueError(
            "plots.energy needs the Hamiltonian energy in sample_stats, which only "
            f"method='nuts' or 'hmc' records; this result is method={result.method!r}. "
            "For SVI check plots.elbo; for Laplace/SVI plots.pareto_khat."
        )
    require_draws(result, "energy")
    with style():
        plot_collection = azp.plot_energy(datatree(result), backend=BACKEND)
    return figure_of(plot_collection)


def ess(
    result: InferenceResult,
    *,
    var_names: str | Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
    kind: str = "local",
) -> Figure:
    """Effective sample size of small intervals (``"local"``) or of quantiles.

    Parameters
    ----------
    result : InferenceResult
        A result with two or more draws per chain.
    var_names : str or sequence of str, optional
        Posterior sites to draw; by default the continuous sites, up to
        :data:`MAX_PANELS` panels.
    coords : mapping, optional
        Coordinate values to select, by dimension name.
    kind : {"local", "quantile"}
        Passed to :func:`arviz_plots.plot_ess`.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_ess`, with the 400 threshold drawn.
    """
    check_result(result, "ess")
    require_draws(result, "ess")
    if kind not in ("local", "quantile"):
        raise ValueError(f"kind must be 'local' or 'quantile'; got {kind!r}.")
    names = select_var_names(result.samples, var_names, "ess")
    with style():
        plot_collection = azp.plot_ess(
            datatree(result), var_names=names, coords=coords, kind=kind, backend=BACKEND
        )
    return figure_of(plot_collection)


def elbo(result: InferenceResult) -> Figure:
    """Plot the ELBO per SVI step, one line per restart, and the last half zoomed.

    Parameters
    ----------
    result : InferenceResult
        A ``method="svi"`` result (its ``elbo`` sample statistic, ``(chain, step)``).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: the whole run, and the last half of the steps, where
        :func:`numpyro_pgm.check` judges whether the ELBO settled.
    """
    check_result(result, "elbo")
    if "elbo" not in result.sample_stats:
        raise ValueError(
            "plots.elbo needs the ELBO history in sample_stats, which only "
            f"method='svi' records; this result is method={result.method!r}. For "
            "MCMC use plots.trace and plots.rank."
        )
    history = np.asarray(result.sample_stats["elbo"], dtype=float)
    with style():
        fig, (whole, tail) = plt.subplots(1, 2, figsize=(11, 4))
        for restart, chain in enumerate(history):
            chain = chain[np.isfinite(chain)]
            steps = np.arange(1, chain.size + 1)
            start = chain.size // 2
            label = f"restart {restart}"
            whole.plot(steps, chain, lw=1, color=f"C{restart}", label=label)
            tail.plot(steps[start:], chain[start:], lw=1, color=f"C{restart}")
        whole.set(title="ELBO", xlabel="step", ylabel="ELBO")
        tail.set(title="ELBO, last half", xlabel="step")
        if history.shape[0] > 1:
            whole.legend()
    return fig
