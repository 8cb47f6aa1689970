"""Predictive checks: prior and posterior predictive densities, LOO-PIT, LOO k-hat."""

import warnings
from collections.abc import Sequence

import arviz_plots as azp
import arviz_stats as azs
import numpy as np
import xarray as xr
from arviz_stats.base import array_stats
from matplotlib.figure import Figure

from ..results import InferenceResult
from ._common import (
    BACKEND,
    check_result,
    datatree,
    figure_of,
    require_draws,
    require_group,
    select_var_names,
    style,
)

__all__ = ["loo_pit", "pareto_khat", "posterior_predictive", "prior_predictive"]


def prior_predictive(
    result: InferenceResult,
    *,
    var_names: str | Sequence[str] | None = None,
    num_samples: int = 50,
) -> Figure:
    """Densities of prior predictive data sets: does the prior give plausible data.

    Parameters
    ----------
    result : InferenceResult
        A result fitted with ``prior=True``.
    var_names : str or sequence of str, optional
        Observed sites to draw; by default all.
    num_samples : int
        How many predictive data sets to draw as densities.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_ppc_dist`.
    """
    check_result(result, "prior_predictive")
    require_group(
        result,
        "prior_predictive",
        "prior_predictive",
        "Pass prior=True to numpyro_pgm.fit to draw it.",
    )
    return _ppc(result, "prior_predictive", var_names, num_samples)


def posterior_predictive(
    result: InferenceResult,
    *,
    var_names: str | Sequence[str] | None = None,
    num_samples: int = 50,
) -> Figure:
    """Densities of posterior predictive data sets over the observed data.

    Parameters
    ----------
    result : InferenceResult
        A result fitted with ``posterior_predictive=True``.
    var_names : str or sequence of str, optional
        Observed sites to draw; by default all.
    num_samples : int
        How many predictive data sets to draw as densities.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_ppc_dist`.
    """
    check_result(result, "posterior_predictive")
    require_group(
        result,
        "posterior_predictive",
        "posterior_predictive",
        "Pass posterior_predictive=True to numpyro_pgm.fit to draw it.",
    )
    return _ppc(result, "posterior_predictive", var_names, num_samples)


def _ppc(result, group, var_names, num_samples) -> Figure:
    names = select_var_names(result.groups[group], var_names, group, group)
    total = int(np.prod(np.shape(result.groups[group][names[0]])[:2]))
    if not 1 <= num_samples:
        raise ValueError(f"num_samples must be a positive int; got {num_samples!r}.")
    with style():
        plot_collection = azp.plot_ppc_dist(
            datatree(result),
            var_names=names,
            group=group,
            num_samples=min(int(num_samples), total),
            backend=BACKEND,
        )
    return figure_of(plot_collection)


def _loo_inputs(result: InferenceResult, plot: str, need_predictive: bool):
    require_group(
        result,
        "log_likelihood",
        plot,
        "It is computed by numpyro_pgm.fit for models with observed sites.",
    )
    if need_predictive:
        require_group(
            result,
            "posterior_predictive",
            plot,
            "Pass posterior_predictive=True to numpyro_pgm.fit to draw it.",
        )
    require_draws(result, plot)
    return datatree(result)


def _approximate(result: InferenceResult) -> bool:
    """Whether LOO must correct for draws from an approximation q, not the posterior."""
    log_weight = result.sample_stats.get("log_weight")
    return log_weight is not None and np.all(np.isfinite(log_weight))


def loo_pit(
    result: InferenceResult, *, var_names: str | Sequence[str] | None = None
) -> Figure:
    r"""LOO-PIT Δ-ECDF: whether held-out observations are calibrated under the model.

    For Laplace and SVI, the PSIS-LOO weights include the importance ratios
    :math:`p(\theta, x)/q(\theta)` of the approximation (``log_weight``), so the
    LOO predictive is that of the posterior, not of :math:`q`.

    Parameters
    ----------
    result : InferenceResult
        A result fitted with ``posterior_predictive=True``.
    var_names : str or sequence of str, optional
        Observed sites to draw; by default all.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_loo_pit` (MCMC) or
        :func:`arviz_plots.plot_ecdf_pit` on :func:`arviz_stats.loo_pit` values.
    """
    check_result(result, "loo_pit")
    tree = _loo_inputs(result, "loo_pit", need_predictive=True)
    names = select_var_names(
        result.groups["posterior_predictive"],
        var_names,
        "loo_pit",
        "posterior_predictive",
    )
    with style():
        if not _approximate(result):
            plot_collection = azp.plot_loo_pit(tree, var_names=names, backend=BACKEND)
            return figure_of(plot_collection)
        # plot_loo_pit takes no importance weights: compute the corrected PIT values
        # and plot them as plot_loo_pit does.
        log_weights, pareto_k = _corrected_loo_weights(result, tree, names)
        values = azs.loo_pit(
            tree,
            var_names=names,
            log_weights=log_weights,
            pareto_k=pareto_k,
            pareto_pit=True,
        )
        plot_collection = azp.plot_ecdf_pit(
            xr.DataTree.from_dict({"loo_pit": values}),
            group="loo_pit",
            sample_dims=list(values.dims),
            visuals={"xlabel": {"text": "LOO-PIT"}, "ylabel": {}},
            backend=BACKEND,
        )
    return figure_of(plot_collection)


def _corrected_loo_weights(result, tree, names):
    """PSIS log-weights and k-hat of LOO for draws from an approximation q."""
    correction = np.asarray(result.sample_stats["log_weight"], dtype=float)
    log_weights, pareto_k = xr.Dataset(), xr.Dataset()
    for name in names:
        log_lik = tree["log_likelihood"][name]
        ratios = -log_lik + xr.DataArray(correction, dims=("chain", "draw"))
        stacked = ratios.transpose(..., "chain", "draw")
        weights, khat = array_stats.psislw(-stacked.values, axis=(-2, -1))
        log_weights[name] = stacked.copy(data=weights)
        pareto_k[name] = xr.DataArray(khat, dims=stacked.dims[:-2])
    return log_weights, pareto_k


_MAX_LABELS = 10


def pareto_khat(result: InferenceResult, *, var_name: str | None = None) -> Figure:
    r"""Pointwise PSIS-LOO Pareto :math:`\hat k` per observation.

    Observations above the threshold (about 0.7) are those whose leave-one-out
    predictive PSIS cannot estimate: influential points or a misfit model; the
    worst ten of them are labelled with their index. For
    Laplace and SVI the approximate-posterior correction of
    :func:`arviz_stats.loo_approximate_posterior` is used.

    Parameters
    ----------
    result : InferenceResult
        A result with a ``log_likelihood`` group.
    var_name : str, optional
        The observed site; required when the model has several.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_khat`.
    """
    check_result(result, "pareto_khat")
    tree = _loo_inputs(result, "pareto_khat", need_predictive=False)
    sites = list(result.log_likelihood)
    if var_name is None and len(sites) > 1:
        raise ValueError(
            f"plots.pareto_khat: the model has several observed sites {sites}; "
            "choose one with var_name=..."
        )
    if var_name is not None and var_name not in sites:
        raise ValueError(
            f"var_name={var_name!r} is not an observed site; choose from {sites}."
        )
    with warnings.catch_warnings():
        # arviz-stats warns when k-hat is high; drawing k-hat is how we report it.
        warnings.filterwarnings(
            "ignore", message="Estimated shape parameter of Pareto distribution"
        )
        if _approximate(result):
            correction = tree["sample_stats"]["log_weight"]
            elpd = azs.loo_approximate_posterior(
                tree,
                log_p=correction,
                log_q=xr.zeros_like(correction),
                pointwise=True,
                var_name=var_name,
            )
        else:
            elpd = azs.loo(tree, pointwise=True, var_name=var_name)
    # Label the observations above the threshold, at most the worst _MAX_LABELS of
    # them: thousands of labels (every rating of a large data set) are unreadable.
    khat = np.sort(np.asarray(elpd.pareto_k).ravel())
    label_above = elpd.good_k
    if np.sum(khat > elpd.good_k) > _MAX_LABELS:
        label_above = max(elpd.good_k, float(khat[-_MAX_LABELS - 1]))
    with style():
        plot_collection = azp.plot_khat(
            elpd,
            threshold=label_above,
            hline_values=[elpd.good_k],
            visuals={"hlines": True},
            backend=BACKEND,
        )
    return figure_of(plot_collection)
