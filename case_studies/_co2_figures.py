"""Figures of the Mauna Loa CO2 case study (``state_space_co2``).

Private helper of :mod:`numpyro_pgm.case_studies.state_space_co2`: the smoothed
decomposition, the longest gap of missing weeks, the forecast and the one-step
prediction errors. Each function returns a Matplotlib figure that the case study
saves and closes. ``components`` holds pooled draws of shape ``(num_draws, T)``
(``trend``, ``seasonal``, ``signal``) and ``(num_draws, horizon)`` (``forecast``),
on the centred scale, and the ``standardized_innovations`` of the observed weeks.
"""

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats

BANDS = (0.5, 0.9)


def bands(draws: np.ndarray) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Central 50% and 90% intervals of the draws, per column."""
    return {
        band: tuple(np.quantile(draws, [(1 - band) / 2, (1 + band) / 2], axis=0))
        for band in BANDS
    }


def _band_plot(ax, x, draws, color, label):
    """Draw the median and the 50%/90% bands of the draws on ``ax``."""
    for band, (low, high) in bands(draws).items():
        ax.fill_between(x, low, high, color=color, alpha=0.5 - 0.25 * band, lw=0)
    ax.plot(x, np.median(draws, 0), color=color, lw=1, label=label)


def plot_decomposition(data, components) -> plt.Figure:
    """Plot the data and fit, the trend and the seasonal effect, with bands."""
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    t, offset = data["time"], data["offset"]
    fitted = components["signal"] + offset
    axes[0].plot(t, data["y"] + offset, ".", ms=2, color="grey", label="weekly CO2")
    _band_plot(axes[0], t, fitted, "tab:blue", "smoothed trend + seasonal")
    missing = t[data["missing"]]
    for ax in axes:
        ax.plot(
            missing,
            np.full(missing.size, 0.02),
            "|",
            color="red",
            ms=6,
            transform=ax.get_xaxis_transform(),
        )
    axes[0].plot([], [], "|", color="red", label=f"missing weeks ({missing.size})")
    _band_plot(axes[1], t, components["trend"] + offset, "tab:green", "trend")
    _band_plot(axes[2], t, components["seasonal"], "tab:purple", "seasonal effect")
    axes[0].set(
        ylabel="CO2 (ppm)",
        title="Mauna Loa CO2: smoothed decomposition "
        "(50% and 90% bands over posterior draws)",
    )
    axes[1].set(ylabel="trend (ppm)")
    axes[2].set(ylabel="seasonal (ppm)", xlabel="year")
    for ax in axes:
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def _longest_gap(missing: np.ndarray) -> tuple[int, int]:
    """Return the first index and length of the longest run of missing weeks."""
    best, start = (0, 0), None
    for i, gone in enumerate(np.append(missing, False)):
        if gone and start is None:
            start = i
        elif not gone and start is not None:
            best = max(best, (i - start, start))
            start = None
    return best[1], best[0]


def plot_gap(data, components) -> plt.Figure:
    """Plot a year either side of the longest gap: what the smoother puts there."""
    start, length = _longest_gap(data["missing"])
    window = slice(max(start - 52, 0), start + length + 52)
    t, offset = data["time"][window], data["offset"]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(t, data["y"][window] + offset, "o", ms=2.5, color="grey", label="data")
    signal = components["signal"][:, window] + offset
    _band_plot(ax, t, signal, "tab:blue", "smoothed trend + seasonal (50%, 90%)")
    if length:
        gap = data["time"][[start, start + length - 1]]
        ax.axvspan(*gap, color="red", alpha=0.08, label=f"{length} missing weeks")
    ax.set(
        xlabel="year",
        ylabel="CO2 (ppm)",
        title="Missing weeks are not imputed: the smoother bridges them",
    )
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def plot_forecast(data, components) -> plt.Figure:
    """Plot the last four years and the two-year predictive intervals."""
    fig, ax = plt.subplots(figsize=(9, 4))
    t, offset = data["time"], data["offset"]
    recent = t >= t[-1] - 4
    ax.plot(
        t[recent],
        data["y"][recent] + offset,
        ".-",
        ms=2,
        lw=0.5,
        color="grey",
        label="data",
    )
    horizon = components["forecast"].shape[1]
    ahead = t[-1] + 7 * np.arange(1, horizon + 1) / 365.25
    _band_plot(
        ax,
        ahead,
        components["forecast"] + offset,
        "tab:blue",
        "predictive median, 50% and 90% intervals",
    )
    ax.set(
        xlabel="year",
        ylabel="CO2 (ppm)",
        title=f"Mauna Loa CO2: {horizon}-week forecast",
    )
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def plot_innovations(data, components) -> plt.Figure:
    """Plot the standardised one-step prediction errors and their histogram."""
    z = components["standardized_innovations"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), width_ratios=(2, 1))
    left.plot(data["time"][~data["missing"]], z, lw=0.4, color="black")
    left.set(
        xlabel="year",
        ylabel="standardised error",
        title="One-step prediction errors (mean sds)",
    )
    grid = np.linspace(-4, 4, 200)
    right.hist(z, bins=50, range=(-5, 5), density=True, color="grey")
    right.plot(grid, scipy.stats.norm.pdf(grid), color="tab:red", label="N(0, 1)")
    right.legend(fontsize="small")
    fig.tight_layout()
    return fig
