"""Figures of the Nile case study (``state_space_nile``): level, forecast, variances.

Private helper of :mod:`numpyro_pgm.case_studies.state_space_nile`; each function
returns a Matplotlib figure that the case study saves and closes. Draws are arrays
of shape ``(num_draws, num_years)`` (level paths) or ``(num_draws, horizon)``
(forecast paths), pooled over chains.
"""

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"nuts": "tab:blue", "latent-nuts": "tab:orange"}
BANDS = (0.5, 0.9)
TITLES = {"level_variance": "sigma^2_eta", "observation_variance": "sigma^2_eps"}


def bands(draws: np.ndarray) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Central 50% and 90% intervals of the draws, per column."""
    return {
        band: tuple(np.quantile(draws, [(1 - band) / 2, (1 + band) / 2], axis=0))
        for band in BANDS
    }


def _preferred(draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """Return the marginalised sampler's draws when there, else the first's."""
    return draws.get("nuts", next(iter(draws.values())))


def plot_level(data, mle, paths) -> plt.Figure:
    """Plot the data, the posterior level with 50%/90% bands and the MLE level."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    year = data["year"]
    ax.plot(year, data["y"], "o", color="grey", ms=3, label="annual flow")
    draws = _preferred(paths)
    for band, (low, high) in bands(draws).items():
        ax.fill_between(
            year, low, high, color="tab:blue", alpha=0.45 - 0.25 * band, lw=0
        )
    ax.plot(year, np.median(draws, 0), color="tab:blue", label="posterior level")
    ax.plot(year, mle["smoothed_mean"], "--", color="black", lw=1, label="MLE level")
    ax.axvline(1898, color="grey", lw=0.8, ls=":")
    ax.set(
        xlabel="year",
        ylabel="flow (1e8 m^3)",
        title="Nile: smoothed level (FFBS per posterior draw; 50% and 90% bands)",
    )
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_forecast(data, mle, forecasts) -> plt.Figure:
    """Plot the last 40 years and the predictive intervals, Bayesian and MLE."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    year, y = data["year"], data["y"]
    draws = _preferred(forecasts)
    horizon = draws.shape[1]
    ahead = year[-1] + 1 + np.arange(horizon)
    ax.plot(year[-40:], y[-40:], "o-", color="grey", ms=3, lw=0.8, label="data")
    for band, (low, high) in bands(draws).items():
        label = f"{band:.0%} predictive interval"
        ax.fill_between(
            ahead, low, high, color="tab:blue", alpha=0.45 - 0.25 * band, label=label
        )
    ax.plot(ahead, np.median(draws, 0), color="tab:blue", label="predictive median")
    half = 1.6449 * mle["forecast_sd"]
    ax.plot(ahead, mle["forecast_mean"] - half, "--", color="black", lw=1)
    ax.plot(
        ahead, mle["forecast_mean"] + half, "--", color="black", lw=1, label="MLE 90%"
    )
    ax.set(
        xlabel="year", ylabel="flow (1e8 m^3)", title=f"Nile: {horizon}-year forecast"
    )
    ax.legend(loc="upper left", fontsize="small", ncols=2)
    fig.tight_layout()
    return fig


def plot_variances(variances, mle, published, reference) -> plt.Figure:
    """Posterior densities of the two variances with the MLE and published values.

    ``variances`` maps each method to ``{"level_variance": draws,
    "observation_variance": draws}``; ``reference`` is statsmodels' fit or ``None``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, (name, title) in zip(axes, TITLES.items(), strict=True):
        for method, draws in variances.items():
            values = np.asarray(draws[name]).reshape(-1)
            color = COLORS[method]
            ax.hist(values, bins=40, density=True, histtype="step", color=color)
            ax.plot([], [], color=color, label=f"posterior, {method}")
        ax.axvline(mle[name], color="black", ls="--", label="our MLE")
        ax.axvline(published[name], color="red", ls=":", label="Durbin & Koopman")
        if reference is not None:
            ax.axvline(
                reference[name], color="green", ls="-.", lw=0.8, label="statsmodels"
            )
        ax.set(title=title, xlabel="variance")
    axes[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_methods(year, paths) -> plt.Figure:
    """Plot the level's posterior mean and sd: FFBS (marginal) vs latent states."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for method, draws in paths.items():
        top.plot(year, draws.mean(0), color=COLORS[method], label=method)
        bottom.plot(year, draws.std(0), color=COLORS[method], label=method)
    top.set(
        ylabel="posterior mean of level",
        title="Level: FFBS per draw (nuts) vs sampled states (latent-nuts)",
    )
    bottom.set(xlabel="year", ylabel="posterior sd of level")
    top.legend(fontsize="small")
    fig.tight_layout()
    return fig
