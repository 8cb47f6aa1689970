"""Figures of the Gaussian mixture case study (:mod:`gmm_old_faithful`).

Each function takes one data set's entry of the case study's results (``data``,
``num_components``, ``fits`` relabelled to a common reference, ``selection``) and,
where needed, its metrics, and returns a matplotlib figure; the case study saves
them. Fits are dictionaries: draws shaped (chain, draw, ...) with the
``InferenceResult`` under ``"result"``, or point estimates without it.
"""

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

__all__ = [
    "COLORS",
    "plot_clusters",
    "plot_methods",
    "plot_objectives",
    "plot_responsibilities",
    "plot_selection",
    "plot_trace",
]

COLORS = {
    "nuts": "black",
    "gibbs": "tab:blue",
    "cavi": "tab:green",
    "svi-meanfield": "tab:red",
    "svi-autonormal": "tab:purple",
    "em": "tab:orange",
}
PLOT_FEATURES = {"old_faithful": (0, 1), "penguins": (0, 1)}
MCMC = ("nuts", "gibbs")


def _is_draws(values: Mapping[str, Any]) -> bool:
    return "result" in values


def _to_raw(data, mu, cov, features):
    """Means and covariances of the two plotted features in the original units."""
    index = np.asarray(features)
    scale, mean = data["scale"][index], data["mean"][index]
    mu = mu[..., index] * scale + mean
    cov = cov[..., index[:, None], index[None, :]] * np.outer(scale, scale)
    return mu, cov


def _ellipse(ax, mean, cov, **style):
    """Add the 2-sd ellipse of a 2-D Gaussian."""
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(eigenvectors[1, -1], eigenvectors[0, -1]))
    width, height = 4 * np.sqrt(eigenvalues[::-1])
    ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, **style))


def plot_clusters(entry, metrics, method):
    """Plot the data by MAP cluster with posterior ellipses and their uncertainty."""
    data, values = entry["data"], entry["fits"][method]
    features = PLOT_FEATURES[data["name"]]
    raw = data["raw"][:, features]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    assignment = metrics[method]["assignment"]
    certainty = metrics[method]["responsibilities"].max(-1)
    palette = plt.get_cmap("tab10")
    markers = ("o", "s", "^", "D", "v", "P")
    groups = data["labels"] if data["labels"] is not None else np.zeros(len(raw), int)
    for group in np.unique(groups):
        members = groups == group
        label = data["label_names"][group] if data["labels"] is not None else None
        ax.scatter(
            raw[members, 0],
            raw[members, 1],
            c=[palette(k) for k in assignment[members]],
            s=10 + 30 * (1 - certainty[members]) * 2,
            marker=markers[group % len(markers)],
            alpha=0.7,
            edgecolors="none",
            label=label,
        )
    if _is_draws(values):
        mu = values["mu"].reshape(-1, *values["mu"].shape[-2:])
        cov = values["cov"].reshape(-1, *values["cov"].shape[-3:])
        rng = np.random.default_rng(0)
        for draw in rng.choice(mu.shape[0], size=min(40, mu.shape[0]), replace=False):
            mu_raw, cov_raw = _to_raw(data, mu[draw], cov[draw], features)
            for k in range(mu_raw.shape[0]):
                _ellipse(ax, mu_raw[k], cov_raw[k], color=palette(k), lw=0.4, alpha=0.3)
        mean_mu, mean_cov = mu.mean(0), cov.mean(0)
    else:
        mean_mu, mean_cov = values["mu"], values["cov"]
    mu_raw, cov_raw = _to_raw(data, mean_mu, mean_cov, features)
    for k in range(mu_raw.shape[0]):
        _ellipse(ax, mu_raw[k], cov_raw[k], color=palette(k), lw=2)
        ax.plot(*mu_raw[k], "x", color="black", ms=8)
    names = data["feature_names"]
    ax.set(
        xlabel=names[features[0]],
        ylabel=names[features[1]],
        title=f"{data['name']}: {method} MAP clusters, 2-sd ellipses "
        "(thin: posterior draws); larger points are less certain",
    )
    ax.title.set_fontsize("small")
    if data["labels"] is not None:
        ax.legend(title="species (marker)", fontsize="small")
    fig.tight_layout()
    return fig


def plot_responsibilities(entry, metrics):
    """Per point, the largest responsibility, sorted, for every method."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, row in metrics.items():
        certainty = np.sort(row["responsibilities"].max(-1))
        ax.plot(certainty, color=COLORS[method], label=method)
    ax.set(
        xlabel="points, sorted",
        ylabel=r"$\max_k\, p(z_n = k \mid x)$",
        title=f"{entry['data']['name']}: how certain each assignment is",
        ylim=(1 / entry["num_components"] - 0.02, 1.02),
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_trace(entry):
    """Trace and rank plots of the relabelled means of the MCMC methods."""
    methods = [m for m in entry["fits"] if m in MCMC]
    num_components = entry["num_components"]
    num_rows = len(methods) * num_components
    fig, axes = plt.subplots(num_rows, 2, figsize=(9, 1.6 * num_rows), squeeze=False)
    for row, (method, k) in enumerate(
        (m, k) for m in methods for k in range(num_components)
    ):
        draws = entry["fits"][method]["mu"][..., k, 0]
        trace_ax, rank_ax = axes[row]
        for chain in draws:
            trace_ax.plot(chain, lw=0.5)
        trace_ax.set_ylabel(f"{method}\nmu[{k}, 0]", fontsize="small")
        ranks = np.argsort(np.argsort(draws.ravel())).reshape(draws.shape)
        bins = np.linspace(0, draws.size, 21)
        for chain in ranks:
            rank_ax.hist(chain, bins=bins, histtype="step")
        rank_ax.axhline(draws.shape[1] / 20, color="grey", ls=":")
    axes[0, 0].set_title("trace (relabelled)")
    axes[0, 1].set_title("rank histograms per chain (uniform when mixed)")
    fig.tight_layout()
    return fig


def plot_objectives(entry):
    """SVI ELBO per step, CAVI ELBO per sweep, EM log-likelihood per iteration."""
    fits = entry["fits"]
    panels = [
        ("SVI: ELBO per step", [m for m in fits if m.startswith("svi")]),
        ("CAVI: ELBO per sweep", [m for m in fits if m == "cavi"]),
        ("EM: log-likelihood per iteration", [m for m in fits if m == "em"]),
    ]
    panels = [(title, methods) for title, methods in panels if methods]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4 * len(panels), 3.5))
    for ax, (title, methods) in zip(np.atleast_1d(axes), panels, strict=False):
        for method in methods:
            curve = fits[method]["curve"]
            ax.plot(np.arange(1, curve.size + 1), curve, color=COLORS[method],
                    label=method)  # fmt: skip
        if title.startswith("SVI"):
            low = min(np.nanquantile(fits[m]["curve"], 0.2) for m in methods)
            high = max(np.nanmax(fits[m]["curve"]) for m in methods)
            ax.set_ylim(low, high + 0.05 * (high - low))
        ax.set(title=title, xlabel="iteration")
        ax.title.set_fontsize("small")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_methods(entry, metrics):
    """Component means (standardised units) per method, with +-2 sd where known."""
    num_components = entry["num_components"]
    dim = entry["data"]["x"].shape[1]
    labels = [f"mu[{k}, {j}]" for k in range(num_components) for j in range(dim)]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.5))
    positions = np.arange(len(labels))[::-1]
    width = 0.8 / len(metrics)
    for offset, (method, row) in enumerate(metrics.items()):
        mean, sd = row["mu"].ravel(), np.asarray(row["mu_sd"]).ravel()
        y = positions + 0.4 - width * (offset + 0.5)
        ax.hlines(y, mean - 2 * sd, mean + 2 * sd, color=COLORS[method])
        ax.plot(mean, y, "o", ms=3, color=COLORS[method], label=method)
    ax.set_yticks(positions, labels, fontsize="small")
    ax.set(
        xlabel="component mean (standardised units), +-2 sd",
        title=f"{entry['data']['name']}: component means by method (relabelled)",
    )
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def plot_selection(selection):
    """ELPD (PSIS-LOO) and the Laplace log evidence against K."""
    table = selection.table
    candidates = table.index.to_numpy()
    fig, (loo_ax, evidence_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    loo_ax.errorbar(candidates, table["elpd_loo"], yerr=table["elpd_loo_se"],
                    fmt="o-", color="black")  # fmt: skip
    loo_ax.set(xlabel="K", ylabel="elpd (PSIS-LOO) +- se", title="PSIS-LOO")
    evidence_ax.plot(candidates, table["log_evidence"], "o-", color="tab:blue",
                     label="one mode + log K!")  # fmt: skip
    evidence_ax.plot(candidates, table["log_evidence_mode"], "o:", color="grey",
                     label="one mode (uncorrected)")  # fmt: skip
    evidence_ax.set(xlabel="K", ylabel="log p(x | K)", title="Laplace evidence")
    evidence_ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
