r"""A trained VAE as the project's :class:`~numpyro_pgm.InferenceResult`.

:func:`~numpyro_pgm.models.vae_training.train` runs its own epoch loop (shuffled
minibatches, checkpoints, held-out ELBO per epoch), so it returns a
:class:`~numpyro_pgm.models.vae_training.TrainingResult`. :func:`inference_result`
turns one into the ``method="svi"`` result that :func:`numpyro_pgm.fit` returns,
so that :func:`numpyro_pgm.check` and :func:`numpyro_pgm.report` apply:

* ``sample_stats["elbo"]`` (``chain, step``): the ELBO of every SVI step, per
  training image, estimated on that step's minibatch (the negative of
  ``step_loss``); ``train_elbo`` and ``test_elbo`` (``chain, epoch``): the ELBO per
  image after each epoch;
* ``posterior["z"]`` (``chain, draw, image, latent``): draws of the codes of the
  images ``x`` from the amortised guide :math:`q_\phi(z \mid x)`. The VAE has no
  global latent variable: its decoder and encoder weights are point estimates,
  and its only latent variables are the per-image codes, so the posterior group
  holds those of a few chosen images;
* ``sample_stats["log_weight"]`` (``chain, draw``): the log importance weight
  of each joint draw of those codes,

  .. math::

      \log w_k = \sum_n \bigl[\log p(z_{nk}) + \log p_\theta(x_n \mid z_{nk})
          - \log q_\phi(z_{nk} \mid x_n)\bigr],

  whose Pareto :math:`\hat k` :func:`numpyro_pgm.check` reports (seed
  ``003_02afaf35b30b64a9.txt``, section 6.3: :math:`\mathbb E_q[\log w]` is the
  ELBO, eq. (6.6));
* ``learned_params``: the trained encoder and decoder weights, one array per
  leaf, with a leading axis of length one (one run);
* ``observed_data["x"]``: the images ``x``.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``, section 6.3.
"""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from numpyro import handlers

from numpyro_pgm.results import InferenceResult

from .vae import Networks, check_images, guide, model
from .vae_networks import _check_positive_int
from .vae_training import TrainingResult

__all__ = ["inference_result"]


def inference_result(
    rng_key: jax.Array,
    training: TrainingResult,
    x: ArrayLike,
    *,
    num_samples: int = 200,
    settings: Mapping[str, Any] | None = None,
    seconds: float | None = None,
) -> InferenceResult:
    r"""Return a trained VAE as an ``InferenceResult`` with method ``"svi"``.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key for the draws of :math:`z \sim q_\phi(z \mid x)`.
    training : TrainingResult
        From :func:`~numpyro_pgm.models.vae_training.train`.
    x : array_like of shape (num_images, num_pixels)
        The images whose codes are drawn; keep it to a few images, since every
        code is a posterior site in the result's tables and plots.
    num_samples : int, default 200
        Draws of the codes; :func:`numpyro_pgm.check` needs at least 100 for the
        Pareto :math:`\hat k` of the importance weights.
    settings : mapping, optional
        Training settings to record (JSON-compatible), e.g. batch size and
        learning rate; the number of epochs and steps are always recorded.
    seconds : float, optional
        Training time, recorded as ``timings["total"]``.

    Returns
    -------
    InferenceResult
        See the module docstring for its groups.

    Raises
    ------
    TypeError
        If ``training`` is not a ``TrainingResult``.
    ValueError
        If ``x`` does not fit the networks (see
        :func:`~numpyro_pgm.models.vae.check_images`) or ``num_samples`` is not a
        positive integer.
    """
    if not isinstance(training, TrainingResult):
        raise TypeError(
            "training must be the TrainingResult of vae_training.train; got "
            f"{type(training).__name__}."
        )
    networks = training.networks
    x = check_images(x, networks)
    num_samples = _check_positive_int("num_samples", num_samples)
    keys = jax.random.split(rng_key, num_samples)
    z, log_weight = _draws(keys, dict(training.params), x, networks)
    step_elbo = -np.asarray(training.step_loss, dtype=np.float64).ravel()
    groups = {
        "posterior": {"z": np.asarray(z)[None]},
        "sample_stats": {
            "elbo": step_elbo[None],
            "log_weight": np.asarray(log_weight)[None],
            "train_elbo": np.asarray(training.train_elbo)[None],
            "test_elbo": np.asarray(training.test_elbo)[None],
        },
        "learned_params": _flat(training.params),
        "observed_data": {"x": np.asarray(x)},
    }
    dims = {
        "posterior": {"z": ("chain", "draw", "image", "latent")},
        "sample_stats": {
            "elbo": ("chain", "step"),
            "log_weight": ("chain", "draw"),
            "train_elbo": ("chain", "epoch"),
            "test_elbo": ("chain", "epoch"),
        },
        "observed_data": {"x": ("image", "pixel")},
    }
    recorded = {
        **dict(settings or {}),
        "num_epochs": training.num_epochs,
        "num_steps": int(step_elbo.size),
        "resumed_from": training.resumed_from,
        "elbo": "per training image, on each step's minibatch",
        "num_samples": num_samples,
    }
    timings = {} if seconds is None else {"total": float(seconds)}
    return InferenceResult(
        method="svi", groups=groups, dims=dims, settings=recorded, timings=timings
    )


@eqx.filter_jit
def _draws(keys: jax.Array, params, x: jax.Array, networks: Networks):
    """Codes z ~ q(z | x) of every image and the summed log weight, per key."""

    def one(key):
        seeded = handlers.seed(handlers.substitute(guide, data=params), key)
        guide_trace = handlers.trace(seeded).get_trace(x, networks=networks)
        replayed = handlers.replay(handlers.substitute(model, data=params), guide_trace)
        model_trace = handlers.trace(replayed).get_trace(x, networks=networks)
        log_weight = (
            model_trace["z"]["fn"].log_prob(model_trace["z"]["value"])
            + model_trace["x"]["fn"].log_prob(model_trace["x"]["value"])
            - guide_trace["z"]["fn"].log_prob(guide_trace["z"]["value"])
        )
        return guide_trace["z"]["value"], jnp.sum(log_weight)

    return jax.vmap(one)(keys)


def _flat(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Learned parameters as named arrays with a leading axis for the one run."""
    flat = {}
    for site, value in params.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
            # e.g. "decoder$params.mlp.layers[0].weight"; no "/", which a
            # DataTree reads as a path.
            flat[site + jax.tree_util.keystr(path)] = np.asarray(leaf)[None]
    return flat
