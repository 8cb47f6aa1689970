"""Distributions against each other: methods overlaid, SBC ranks against uniform."""

from collections.abc import Mapping, Sequence
from typing import Any

import arviz_plots as azp
import numpy as np
import xarray as xr
from arviz_base import rcParams
from arviz_plots.visuals import fill_between_y
from arviz_stats.ecdf_utils import ecdf_pit
from matplotlib.figure import Figure

from ..compare import label_results
from ..results import InferenceResult
from ._common import (
    BACKEND,
    datatree,
    figure_of,
    select_var_names,
    style,
)

__all__ = ["methods", "sbc_ecdf"]

_BAND_SIMULATIONS = 1000


def methods(
    results: Sequence[InferenceResult] | Mapping[str, InferenceResult],
    *,
    var_names: str | Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> Figure:
    """Marginals of several results overlaid, one panel per scalar parameter.

    Each result is a colour, labelled by its method (``"svi"``, ``"svi-2"``, ...)
    or by the keys of a mapping. Every result is thinned evenly to the draws of the
    smallest, so the densities are estimated from equally many draws.

    Parameters
    ----------
    results : sequence or mapping of InferenceResult
        Two or more results of the same model; a mapping gives the labels.
    var_names : str or sequence of str, optional
        Posterior sites to draw (shared by all results); by default the shared
        continuous sites, up to :data:`MAX_PANELS` panels.
    coords : mapping, optional
        Coordinate values to select, by dimension name.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_dist` with one entry per result.
    """
    labelled = label_results(results, "plots.methods")
    for label, result in labelled.items():
        if result.num_draws * result.num_chains < 2:
            raise ValueError(
                f"plots.methods: result {label!r} ({result.method}) holds a single "
                "draw; a point has no density to overlay. Leave it out, or fit "
                "method='laplace' instead of 'map'."
            )
    first = next(iter(labelled.values()))
    shared = {
        name: value
        for name, value in first.samples.items()
        if all(
            name in r.samples and np.shape(r.samples[name])[2:] == np.shape(value)[2:]
            for r in labelled.values()
        )
    }
    names = select_var_names(shared, var_names, "methods")
    size = min(r.num_draws * r.num_chains for r in labelled.values())
    trees = {label: _pooled(result, names, size) for label, result in labelled.items()}
    with style():
        plot_collection = azp.plot_dist(
            trees,
            var_names=names,
            coords=coords,
            visuals={"point_estimate_text": False},
            backend=BACKEND,
        )
        plot_collection.add_legend("model", title="method")
    return figure_of(plot_collection)


def _pooled(result: InferenceResult, names: Sequence[str], size: int) -> xr.DataTree:
    """Return the draws of ``names`` as one chain of ``size`` evenly spaced draws."""
    posterior = datatree(result)["posterior"].to_dataset()[list(names)]
    pooled = posterior.stack(sample=("chain", "draw"))
    index = np.round(np.linspace(0, pooled.sizes["sample"] - 1, size)).astype(int)
    pooled = pooled.isel(sample=index).drop_vars(["sample", "chain", "draw"])
    pooled = pooled.rename(sample="draw").assign_coords(draw=np.arange(size))
    pooled = pooled.expand_dims(chain=[0]).transpose("chain", "draw", ...)
    return xr.DataTree.from_dict({"posterior": pooled})


def sbc_ecdf(
    ranks: Any,
    num_draws: int,
    *,
    parameter_names: Sequence[str] | None = None,
    envelope_prob: float | None = None,
) -> Figure:
    r"""Δ-ECDF of simulation-based calibration ranks with simultaneous bands.

    With a calibrated method the rank of the true parameter among ``num_draws``
    posterior draws is uniform on :math:`\{0, \dots, L\}`; each panel shows the
    ECDF of the ranks (as fractions :math:`(r + 1/2)/(L + 1)`) minus the uniform
    CDF, inside the simultaneous band that contains a whole uniform ECDF with
    probability ``envelope_prob`` (Säilynoja et al. 2022). Points that drive a
    departure from uniformity (arviz-stats' ``pot_c`` test) are marked; the
    p-values of :func:`numpyro_pgm.sbc` come from randomised PIT values instead.

    Parameters
    ----------
    ranks : array_like, shape (num_simulations, num_parameters)
        Integer ranks in ``0..num_draws``, one row per simulation.
    num_draws : int
        The number :math:`L` of (thinned) posterior draws each rank was taken among.
    parameter_names : sequence of str, optional
        One name per column; defaults to ``"theta[0]"``, ``"theta[1]"``, ...
    envelope_prob : float, optional
        Coverage of the simultaneous band; arviz' ``stats.envelope_prob`` by default.

    Returns
    -------
    matplotlib.figure.Figure
        Built by :func:`arviz_plots.plot_ecdf_pit`, with the band of
        :func:`arviz_stats.ecdf_utils.ecdf_pit` (1000 simulations) added.

    References
    ----------
    Säilynoja, Bürkner and Vehtari (2022), *Graphical test for discrete uniformity
    and its applications in goodness-of-fit evaluation and multiple sample
    comparison*, Statistics and Computing 32(32).
    """
    array = np.asarray(ranks)
    if array.ndim != 2 or array.shape[0] < 2 or array.size == 0:
        raise ValueError(
            "ranks must be an array shaped (num_simulations, num_parameters) with at "
            f"least 2 simulations; got shape {array.shape}."
        )
    if isinstance(num_draws, bool) or not isinstance(num_draws, int | np.integer):
        raise TypeError(f"num_draws must be an int; got {num_draws!r}.")
    if num_draws < 1:
        raise ValueError(f"num_draws must be positive; got {num_draws}.")
    if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
        raise ValueError("ranks must be integers (the rank of each true value).")
    if array.min() < 0 or array.max() > num_draws:
        raise ValueError(
            f"ranks must lie in 0..num_draws={num_draws}; got values from "
            f"{array.min()} to {array.max()}. Pass the number of draws ranked among."
        )
    names = (
        [f"theta[{i}]" for i in range(array.shape[1])]
        if parameter_names is None
        else [str(n) for n in parameter_names]
    )
    if len(names) != array.shape[1] or len(set(names)) != len(names):
        raise ValueError(
            f"parameter_names must be {array.shape[1]} distinct names, one per column "
            f"of ranks; got {parameter_names!r}."
        )
    fractions = (array + 0.5) / (num_draws + 1)
    dataset = xr.Dataset(
        {name: (("simulation",), fractions[:, i]) for i, name in enumerate(names)},
        coords={"simulation": np.arange(array.shape[0])},
    )
    probability = (
        rcParams["stats.envelope_prob"] if envelope_prob is None else envelope_prob
    )
    if not 0 < probability < 1:
        raise ValueError(f"envelope_prob must be in (0, 1); got {envelope_prob!r}.")
    # The band of Säilynoja et al. for this many simulations (arviz-plots' own
    # method="envelope" path fails on numpy 2: it passes a DataArray to linspace).
    x, _, lower, upper = ecdf_pit(
        np.linspace(0.0, 1.0, array.shape[0]),
        probability,
        n_simulations=_BAND_SIMULATIONS,
        rng=np.random.default_rng(0),
    )
    with style():
        plot_collection = azp.plot_ecdf_pit(
            xr.DataTree.from_dict({"sbc": dataset}),
            group="sbc",
            sample_dims=["simulation"],
            envelope_prob=probability,
            # The p-value of a test is numpyro_pgm.sbc's (randomised PIT); the
            # mid-rank fractions drawn here are for the eye, not for a test.
            visuals={
                "xlabel": {"text": "fractional rank"},
                "ylabel": {},
                "p_value_text": False,
            },
            backend=BACKEND,
        )
        plot_collection.map(
            fill_between_y,
            "simultaneous_band",
            data=dataset,
            x=x,
            y_bottom=lower - x,
            y_top=upper - x,
            step=True,
            color="B1",
            alpha=0.15,
            ignore_aes="all",
        )
    return figure_of(plot_collection)
