"""Figures of the VAE digits case study (:mod:`vae_digits`).

Reconstructions, images decoded from prior draws, interpolations in latent space,
the latent map of the test digits, the decoded latent manifold (L = 2) and the
ELBO curves; each function returns a Matplotlib figure.
"""

from collections.abc import Mapping
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
from numpyro_pgm.models import vae_evaluation
from scipy.stats import norm

__all__ = [
    "plot_elbo_curves",
    "plot_interpolation",
    "plot_latent_manifold",
    "plot_latent_map",
    "plot_prior_samples",
    "plot_reconstructions",
]


def _show_images(axes, images, image_shape=(8, 8)):
    for ax, image in zip(np.ravel(axes), images, strict=False):
        ax.imshow(np.reshape(image, image_shape), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])


def plot_elbo_curves(runs: Mapping[int, Mapping[str, Any]]):
    figure, ax = plt.subplots(figsize=(6.5, 4))
    for index, (latent_dims, run) in enumerate(runs.items()):
        result, color = run["result"], f"C{index}"
        epochs = np.arange(1, result.num_epochs + 1)
        ax.plot(epochs, result.train_elbo, color=color, label=f"L={latent_dims} train")
        ax.plot(epochs, result.test_elbo, color=color, ls="--", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO per image (nats)")
    lows = [
        np.nanmin(r["result"].test_elbo[len(r["result"].test_elbo) // 10 :])
        for r in runs.values()
    ]
    ax.set_ylim(bottom=min(lows) - 5)
    ax.legend(ncol=len(runs), fontsize="small")
    ax.set_title("ELBO during training")
    figure.tight_layout()
    return figure


def _one_per_class(y: np.ndarray) -> np.ndarray:
    return np.array([np.flatnonzero(y == label)[0] for label in np.unique(y)])


def plot_reconstructions(runs, data):
    chosen = _one_per_class(data["y_test"])
    originals = data["x_test"][chosen]
    figure, axes = plt.subplots(
        1 + len(runs), len(chosen), figsize=(len(chosen), 1.1 * (1 + len(runs)))
    )
    axes = np.atleast_2d(axes)
    _show_images(axes[0], originals)
    axes[0, 0].set_ylabel("data", rotation=0, ha="right")
    for row, (latent_dims, run) in enumerate(runs.items(), start=1):
        images = vae_evaluation.reconstruct(
            run["result"].params, originals, networks=run["networks"]
        )
        _show_images(axes[row], np.asarray(images))
        axes[row, 0].set_ylabel(f"L={latent_dims}", rotation=0, ha="right")
    figure.suptitle("Test digits and their reconstructions E[x | z = mu(x)]")
    return figure


def plot_prior_samples(runs, num_images: int = 10):
    figure, axes = plt.subplots(
        len(runs), num_images, figsize=(num_images, 1.1 * len(runs))
    )
    axes = np.atleast_2d(axes)
    for row, (latent_dims, run) in enumerate(runs.items()):
        images, _ = vae_evaluation.sample_prior(
            jax.random.fold_in(run["eval_key"], 2),
            run["result"].params,
            networks=run["networks"],
            num_images=num_images,
        )
        _show_images(axes[row], np.asarray(images))
        axes[row, 0].set_ylabel(f"L={latent_dims}", rotation=0, ha="right")
    figure.suptitle("New digits: E[x | z] for z drawn from the prior N(0, I)")
    return figure


def plot_interpolation(runs, data, num_steps: int = 10):
    y = data["y_test"]
    start, end = np.flatnonzero(y == 1)[0], np.flatnonzero(y == 7)[0]
    figure, axes = plt.subplots(
        len(runs), num_steps, figsize=(num_steps, 1.1 * len(runs))
    )
    axes = np.atleast_2d(axes)
    for row, (latent_dims, run) in enumerate(runs.items()):
        images = vae_evaluation.interpolate(
            run["result"].params,
            data["x_test"][start],
            data["x_test"][end],
            networks=run["networks"],
            num_steps=num_steps,
        )
        _show_images(axes[row], np.asarray(images))
        axes[row, 0].set_ylabel(f"L={latent_dims}", rotation=0, ha="right")
    figure.suptitle("A straight line in latent space from a test 1 to a test 7")
    return figure


def plot_latent_map(runs, metrics, data):
    latent_dims = min(runs)
    means = metrics[latent_dims]["test_means"]
    title = f"Encoder means of the test digits (L={latent_dims})"
    if latent_dims > 2:
        centred = means - means.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        means = centred @ components[:2].T
        title += ", first two principal components"
    figure, ax = plt.subplots(figsize=(6, 5.2))
    points = ax.scatter(
        means[:, 0],
        means[:, 1],
        c=data["y_test"],
        cmap="tab10",
        s=12,
        vmin=-0.5,
        vmax=9.5,
    )
    figure.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("latent 1")
    ax.set_ylabel("latent 2")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_latent_manifold(run, grid_size: int = 15):
    values = norm.ppf(np.linspace(0.03, 0.97, grid_size))
    z = np.array([[a, b] for b in values[::-1] for a in values], dtype=np.float32)
    images = np.asarray(
        vae_evaluation.decode(run["result"].params, z, networks=run["networks"])
    )
    canvas = images.reshape(grid_size, grid_size, 8, 8).transpose(0, 2, 1, 3)
    figure, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(canvas.reshape(grid_size * 8, grid_size * 8), cmap="gray_r")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("Decoded latent space (L=2), grid at N(0, 1) quantiles")
    figure.tight_layout()
    return figure
