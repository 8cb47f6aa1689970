"""Figures of the MovieLens matrix factorisation case study (:mod:`mf_movielens`).

Held-out RMSE and interval coverage against the number of factors, the CAVI and
SVI ELBO traces, and the map of the items' factors; each function saves a PNG.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_elbo", "plot_factor_grid", "plot_item_factors"]


def plot_factor_grid(
    grid_scores: Mapping[int, tuple[float, float]],
    metrics: Mapping[str, Mapping[str, float]],
    prob: float,
    path: Path,
) -> None:
    """Held-out RMSE and coverage of ``prob`` intervals (CAVI) against K."""
    ks = sorted(grid_scores)
    rmse = [grid_scores[k][0] for k in ks]
    coverage = [grid_scores[k][1] for k in ks]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(ks, rmse, "o-", color="tab:blue", label="CAVI")
    for name, style in (("biases", ":"), ("truncated SVD", "--")):
        left.axhline(metrics[name]["rmse"], color="gray", ls=style, label=name)
    left.set(xlabel="number of factors K", ylabel="held-out RMSE", xscale="log")
    left.legend(frameon=False)
    right.plot(ks, coverage, "o-", color="tab:blue")
    right.axhline(prob, color="gray", ls=":")
    right.set(xlabel="number of factors K", ylabel=f"coverage of {prob:.0%} intervals")
    right.set_xscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_elbo(fits: Mapping[str, Any], path: Path) -> None:
    """CAVI ELBO per sweep and the SVI minibatch ELBO per step (smoothed)."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    if "cavi" in fits:
        elbo = fits["cavi"].elbo
        axes[0].plot(np.arange(1, elbo.size), elbo[1:], color="tab:blue")
        axes[0].set(xlabel="CAVI sweep", ylabel="ELBO", title="CAVI (never decreases)")
    if "svi" in fits:
        elbo = np.asarray(fits["svi"].sample_stats["elbo"][0])
        window = max(1, elbo.size // 50)
        smooth = np.convolve(elbo, np.ones(window) / window, mode="valid")
        axes[1].plot(elbo, color="tab:red", alpha=0.3, lw=0.5)
        axes[1].plot(np.arange(smooth.size) + window - 1, smooth, color="tab:red")
        if "cavi" in fits:
            axes[1].axhline(
                fits["cavi"].elbo[-1],
                color="tab:blue",
                ls="--",
                label="CAVI optimum (full K x K covariances)",
            )
            axes[1].legend(frameon=False, loc="lower right")
        axes[1].set(xlabel="SVI step", ylabel="minibatch ELBO", title="SVI")
        low, high = np.percentile(elbo[elbo.size // 10 :], [1, 100])
        axes[1].set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_item_factors(
    data: Mapping[str, Any], fit_k: Any, path: Path, num_labels: int = 14
) -> None:
    """CAVI posterior means of the item factors on their two principal axes.

    The factors are identified only up to rotation, so they are shown rotated to
    their principal axes; point size grows with the item's number of ratings and
    the most rated titles are labelled.
    """
    num_factors = fit_k.settings["num_factors"]
    means = np.asarray(fit_k.item_mean)[:, :num_factors]
    centred = means - means.mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ axes.T
    if coords.shape[1] == 1:
        coords = np.concatenate([coords, np.zeros_like(coords)], axis=1)
    counts = np.bincount(data["train"]["item"], minlength=data["num_items"])
    figure, axis = plt.subplots(figsize=(7, 6))
    axis.scatter(
        coords[:, 0],
        coords[:, 1],
        s=4 + 40 * counts / counts.max(),
        color="tab:blue",
        alpha=0.35,
        linewidths=0,
    )
    for index in np.argsort(-counts)[:num_labels]:
        axis.annotate(str(data["titles"][index])[:28], coords[index, :2], fontsize=7)
    axis.set(
        xlabel="item factor, principal axis 1",
        ylabel="item factor, principal axis 2",
        title=f"CAVI posterior means of the item factors (K = {num_factors})",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
