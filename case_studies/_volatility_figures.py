"""Figures of the stochastic volatility case study (``state_space_volatility``).

Private helper of :mod:`numpyro_pgm.case_studies.state_space_volatility`: the growth
series with each method's posterior volatility bands, the parameter marginals of
the methods overlaid, and the ELBO of the SVI fit.
"""

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

import numpyro_pgm as pgm

COLORS = {"nuts": "tab:blue", "svi-lowrank": "tab:red"}


def volatility_draws(result: pgm.InferenceResult) -> np.ndarray:
    r"""Draws of the volatility :math:`e^{h_t / 2}`, shape ``(num_draws, T)``."""
    h = np.asarray(result.samples["log_volatility"], dtype=np.float64)
    return np.exp(h.reshape(-1, h.shape[-1]) / 2)


def plot_volatility(
    data: Mapping[str, np.ndarray], fits: Mapping[str, pgm.InferenceResult]
) -> Figure:
    """Plot growth, and each method's volatility median with 50%/90% bands.

    The top panel is the series itself with +- 2 posterior-median
    volatilities of the reference (first) method; the bottom panel the volatility
    of every method, with :math:`|y_t|` for scale.
    """
    t, y = data["time"], data["y"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(1, 1.3)
    )
    reference = np.median(volatility_draws(next(iter(fits.values()))), axis=0)
    top.plot(t, y + data["mean"], color="black", lw=0.8, label="growth")
    top.fill_between(
        t,
        data["mean"] - 2 * reference,
        data["mean"] + 2 * reference,
        color="grey",
        alpha=0.25,
        lw=0,
        label=f"mean +- 2 x volatility ({next(iter(fits))} median)",
    )
    top.set(ylabel="annualised growth (%)", title="US real GDP growth, 1959-2009")
    top.legend(loc="upper right", fontsize="small")
    bottom.plot(t, np.abs(y), ".", color="grey", ms=3, label="|growth - mean|")
    for method, result in fits.items():
        draws = volatility_draws(result)
        color = COLORS.get(method, None)
        for band, alpha in ((0.9, 0.15), (0.5, 0.3)):
            low, high = np.quantile(draws, [(1 - band) / 2, (1 + band) / 2], axis=0)
            bottom.fill_between(t, low, high, color=color, alpha=alpha, lw=0)
        bottom.plot(t, np.median(draws, 0), color=color, label=f"{method} median")
    bottom.axvline(1984, color="black", lw=0.8, ls=":")
    bottom.set(
        xlabel="year",
        ylabel="volatility exp(h_t / 2) (%)",
        title="Posterior volatility: median, 50% and 90% bands",
    )
    bottom.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_parameters(
    fits: Mapping[str, pgm.InferenceResult], names: tuple[str, ...]
) -> Figure:
    """Histograms of the parameters' marginals, the methods overlaid."""
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4))
    for ax, name in zip(axes, names, strict=True):
        draws = {m: np.ravel(r.samples[name]) for m, r in fits.items()}
        pooled = np.concatenate(list(draws.values()))
        bins = np.linspace(*np.quantile(pooled, [0.001, 0.999]), 50)
        for method, values in draws.items():
            ax.hist(
                values,
                bins=bins,
                density=True,
                histtype="stepfilled",
                alpha=0.35,
                color=COLORS.get(method),
                label=f"{method}: {values.mean():.3f} ({values.std():.3f})",
            )
        ax.set(xlabel=name, yticks=[])
        ax.legend(fontsize="x-small", title="mean (sd)", title_fontsize="x-small")
    fig.suptitle("Posterior marginals of the parameters")
    fig.tight_layout()
    return fig
