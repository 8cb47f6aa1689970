r"""Evaluating a trained VAE: ELBO, importance-weighted bound, images from codes.

Every function takes the trained parameters ``params`` (a dict with the sites
``encoder$params`` and ``decoder$params``, as from ``svi.get_params(state)`` or
:func:`numpyro_pgm.models.vae_training.train`) and the :class:`~numpyro_pgm.models.
vae.Networks` they belong to.

The estimators of :math:`\log p_\theta(x)` are built on the log importance weights
of the guide's samples, computed by tracing :func:`~numpyro_pgm.models.vae.guide`
and replaying :func:`~numpyro_pgm.models.vae.model` (so they score exactly the model
that was trained, with :math:`\beta = 1` and no minibatch scaling):

.. math::

    \log w_k = \log p_\theta(x, z_k) - \log q_\phi(z_k \mid x),
    \qquad z_k \sim q_\phi(z \mid x).

The ELBO (seed ``003_02afaf35b30b64a9.txt``, section 6.3, eqs. (6.6) and (6.15)) is
their mean, or, with the analytic KL,
:math:`\frac1K \sum_k \log p_\theta(x \mid z_k) - \mathrm{KL}(q_\phi \,\|\, p)`.
The importance-weighted bound of Burda et al. [1]_ is

.. math::

    \mathcal{L}_K(x) = \log \frac1K \sum_{k=1}^K w_k
        \;\le\; \log p_\theta(x),

with :math:`\mathbb{E}[\mathcal{L}_1] = \mathrm{ELBO} \le \mathbb{E}[\mathcal{L}_K]
\le \mathbb{E}[\mathcal{L}_{K+1}]`, and :math:`\mathcal{L}_K \to \log p_\theta(x)`
as :math:`K \to \infty`. Both are computed in chunks of images so that memory stays
near ``max_elements`` numbers whatever :math:`K`.

References
----------
.. [1] Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted
   autoencoders", ICLR (2016).
.. [2] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``, section 6.3.
.. [3] W. Rodriguez, *Learning Distributions with Variational Autoencoders* (2025),
   seed ``002_9628f16bcd0397bc.txt``: sampling from and interpolating in the latent
   space; encoder means as classifier features.
"""

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from numpyro import handlers

from .vae import Networks, check_images, guide, kl_divergence, model

__all__ = [
    "decode",
    "elbo",
    "encode",
    "importance_weighted_bound",
    "interpolate",
    "log_weights",
    "reconstruct",
    "sample_prior",
    "with_params",
]

_MAX_ELEMENTS = 2**22


def with_params(networks: Networks, params: Mapping[str, Any]) -> Networks:
    """Return ``networks`` with the trained weights of ``params`` put in.

    Parameters
    ----------
    networks : Networks
        The networks the parameters were trained from.
    params : mapping
        Parameter sites ``encoder$params`` and/or ``decoder$params``; a missing
        site keeps the weights of ``networks``.

    Returns
    -------
    Networks
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be the dict of trained parameters (sites "
            "'encoder$params' and 'decoder$params'), e.g. `svi.get_params(state)`; "
            f"got {type(params).__name__}."
        )
    encoder, decoder = networks.encoder, networks.decoder
    if "encoder$params" in params:
        encoder = eqx.combine(params["encoder$params"], encoder)
    if "decoder$params" in params:
        decoder = eqx.combine(params["decoder$params"], decoder)
    return eqx.tree_at(lambda n: (n.encoder, n.decoder), networks, (encoder, decoder))


def encode(
    params: Mapping[str, Any], x: ArrayLike, *, networks: Networks
) -> tuple[jax.Array, jax.Array]:
    r"""Means :math:`\mu_\phi(x)` and standard deviations :math:`\sigma_\phi(x)`.

    The means are the VAE embeddings used as classifier features in seed
    ``002_9628f16bcd0397bc.txt`` ("VAEs for Classification").

    Parameters
    ----------
    params : mapping
        Trained parameters.
    x : array_like of shape (num_images, num_pixels)
        Images.
    networks : Networks
        The networks.

    Returns
    -------
    loc, scale : Array of shape (num_images, latent_dims)
    """
    x = check_images(x, networks)
    return _encode(with_params(networks, params), x)


@eqx.filter_jit
def _encode(networks: Networks, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jax.vmap(networks.encoder)(x)


def decode(params: Mapping[str, Any], z: ArrayLike, *, networks: Networks) -> jax.Array:
    r"""Mean image :math:`\mathbb{E}[x \mid z]` for each latent code.

    Pixel probabilities :math:`\sigma(f_\theta(z))` for the Bernoulli decoder,
    means :math:`f_\theta(z)` for the Gaussian one.

    Parameters
    ----------
    params : mapping
        Trained parameters.
    z : array_like of shape (num_codes, latent_dims)
        Latent codes.
    networks : Networks
        The networks.

    Returns
    -------
    Array of shape (num_codes, num_pixels)
    """
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[1] != networks.latent_dims:
        raise ValueError(
            f"z must have shape (num_codes, {networks.latent_dims}); got {z.shape}."
        )
    return _decode(with_params(networks, params), z)


@eqx.filter_jit
def _decode(networks: Networks, z: jax.Array) -> jax.Array:
    out = jax.vmap(networks.decoder)(z)
    return jax.nn.sigmoid(out) if networks.likelihood == "bernoulli" else out


def reconstruct(
    params: Mapping[str, Any], x: ArrayLike, *, networks: Networks
) -> jax.Array:
    r"""Reconstructions :math:`\mathbb{E}[x \mid z = \mu_\phi(x)]` of images.

    Parameters
    ----------
    params : mapping
        Trained parameters.
    x : array_like of shape (num_images, num_pixels)
        Images.
    networks : Networks
        The networks.

    Returns
    -------
    Array of shape (num_images, num_pixels)
    """
    loc, _ = encode(params, x, networks=networks)
    return _decode(with_params(networks, params), loc)


def sample_prior(
    rng_key: jax.Array,
    params: Mapping[str, Any],
    *,
    networks: Networks,
    num_images: int,
) -> tuple[jax.Array, jax.Array]:
    r"""Draw new images from the prior: :math:`z \sim \mathcal N(0, I)`, then decode.

    Returns the mean images :math:`\mathbb{E}[x \mid z]` (smooth probabilities
    for the Bernoulli decoder), which show what the decoder learned better than
    binary draws; :func:`numpyro_pgm.models.vae.simulate` draws the images.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    params : mapping
        Trained parameters.
    networks : Networks
        The networks.
    num_images : int
        Number of images.

    Returns
    -------
    images : Array of shape (num_images, num_pixels)
    z : Array of shape (num_images, latent_dims)
    """
    z = jax.random.normal(rng_key, (int(num_images), networks.latent_dims))
    return decode(params, z, networks=networks), z


def interpolate(
    params: Mapping[str, Any],
    x_start: ArrayLike,
    x_end: ArrayLike,
    *,
    networks: Networks,
    num_steps: int = 8,
) -> jax.Array:
    r"""Decode a straight line between the codes of two images.

    .. math::

        z_t = (1 - t)\, \mu_\phi(x_\text{start}) + t\, \mu_\phi(x_\text{end}),
        \qquad t = 0, \tfrac{1}{S-1}, \dots, 1.

    Parameters
    ----------
    params : mapping
        Trained parameters.
    x_start, x_end : array_like of shape (num_pixels,)
        The two images.
    networks : Networks
        The networks.
    num_steps : int, default 8
        Number :math:`S \ge 2` of images along the line, ends included.

    Returns
    -------
    Array of shape (num_steps, num_pixels)
    """
    if int(num_steps) < 2:
        raise ValueError(f"num_steps must be >= 2; got {num_steps!r}.")
    ends = jnp.stack([jnp.ravel(jnp.asarray(x_start)), jnp.ravel(jnp.asarray(x_end))])
    loc, _ = encode(params, ends, networks=networks)
    t = jnp.linspace(0.0, 1.0, int(num_steps))[:, None]
    return decode(params, (1.0 - t) * loc[0] + t * loc[1], networks=networks)


def _site_log_prob(site: Mapping[str, Any]) -> jax.Array:
    return site["fn"].log_prob(site["value"])


def _traces(rng_key, params, x, networks):
    seeded = handlers.seed(handlers.substitute(guide, data=params), rng_key)
    guide_trace = handlers.trace(seeded).get_trace(x, networks=networks)
    replayed = handlers.replay(handlers.substitute(model, data=params), guide_trace)
    model_trace = handlers.trace(replayed).get_trace(x, networks=networks)
    return guide_trace, model_trace


def _one_log_weight(rng_key, params, x, networks):
    guide_trace, model_trace = _traces(rng_key, params, x, networks)
    log_joint = _site_log_prob(model_trace["z"]) + _site_log_prob(model_trace["x"])
    return log_joint - _site_log_prob(guide_trace["z"])


def _one_analytic_elbo(rng_key, params, x, networks):
    guide_trace, model_trace = _traces(rng_key, params, x, networks)
    q = guide_trace["z"]["fn"].base_dist
    return _site_log_prob(model_trace["x"]) - kl_divergence(q.loc, q.scale)


def _per_sample(
    one: Callable, rng_key, params, x, networks, num_samples: int, chunk: int
) -> jax.Array:
    """(num_samples, num_images) values of ``one``, in chunks of images."""
    num_images = x.shape[0]
    num_chunks = -(-num_images // chunk)
    padded = jnp.zeros((num_chunks * chunk, x.shape[1]), x.dtype).at[:num_images].set(x)
    keys = jax.random.split(rng_key, num_chunks)

    def run_chunk(args):
        chunk_key, images = args
        sample_keys = jax.random.split(chunk_key, num_samples)
        return jax.vmap(lambda k: one(k, params, images, networks))(sample_keys)

    values = jax.lax.map(run_chunk, (keys, padded.reshape(num_chunks, chunk, -1)))
    return jnp.moveaxis(values, 0, 1).reshape(num_samples, -1)[:, :num_images]


@eqx.filter_jit
def _log_weights(rng_key, params, x, networks, num_samples, chunk):
    return _per_sample(
        _one_log_weight, rng_key, params, x, networks, num_samples, chunk
    )


@eqx.filter_jit
def _analytic_elbos(rng_key, params, x, networks, num_samples, chunk):
    return _per_sample(
        _one_analytic_elbo, rng_key, params, x, networks, num_samples, chunk
    )


def _chunk(networks: Networks, num_images: int, num_samples: int) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
        raise TypeError(f"num_samples must be an int >= 1; got {num_samples!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1; got {num_samples!r}.")
    width = max(networks.num_pixels, networks.encoder.mlp.width_size, 1)
    return int(max(1, min(num_images, _MAX_ELEMENTS // (num_samples * width))))


def log_weights(
    rng_key: jax.Array,
    params: Mapping[str, Any],
    x: ArrayLike,
    *,
    networks: Networks,
    num_samples: int,
) -> jax.Array:
    r"""Log importance weights :math:`\log p_\theta(x, z_k) - \log q_\phi(z_k \mid x)`.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    params : mapping
        Trained parameters.
    x : array_like of shape (num_images, num_pixels)
        Images.
    networks : Networks
        The networks.
    num_samples : int
        Draws :math:`K` from :math:`q_\phi(z \mid x)` per image.

    Returns
    -------
    Array of shape (num_samples, num_images)
    """
    x = check_images(x, networks)
    if x.shape[0] == 0:
        return jnp.zeros((num_samples, 0))
    chunk = _chunk(networks, x.shape[0], num_samples)
    return _log_weights(rng_key, dict(params), x, networks, int(num_samples), chunk)


def elbo(
    rng_key: jax.Array,
    params: Mapping[str, Any],
    x: ArrayLike,
    *,
    networks: Networks,
    num_samples: int = 1,
    analytic_kl: bool = True,
) -> jax.Array:
    r"""Per-image Monte Carlo estimates of the ELBO (:math:`\beta = 1`).

    With ``analytic_kl=True`` (eq. (6.15) of seed ``003_02afaf35b30b64a9.txt``)

    .. math::

        \widehat{\mathcal L}(x) = \frac1K \sum_{k=1}^K \log p_\theta(x \mid z_k)
            - \mathrm{KL}\bigl(q_\phi(z \mid x) \,\|\, \mathcal N(0, I)\bigr),

    otherwise the mean of the log importance weights (eq. (6.6), KL by Monte
    Carlo). Both are unbiased for the ELBO.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    params : mapping
        Trained parameters.
    x : array_like of shape (num_images, num_pixels)
        Images.
    networks : Networks
        The networks.
    num_samples : int, default 1
        Draws :math:`K` per image.
    analytic_kl : bool, default True
        Use the closed-form KL of :func:`~numpyro_pgm.models.vae.kl_divergence`.

    Returns
    -------
    Array of shape (num_images,)
    """
    if not analytic_kl:
        return log_weights(
            rng_key, params, x, networks=networks, num_samples=num_samples
        ).mean(axis=0)
    x = check_images(x, networks)
    if x.shape[0] == 0:
        return jnp.zeros((0,))
    chunk = _chunk(networks, x.shape[0], num_samples)
    values = _analytic_elbos(rng_key, dict(params), x, networks, num_samples, chunk)
    return values.mean(axis=0)


def importance_weighted_bound(
    rng_key: jax.Array,
    params: Mapping[str, Any],
    x: ArrayLike,
    *,
    networks: Networks,
    num_samples: int = 100,
) -> jax.Array:
    r"""Per-image importance-weighted bounds :math:`\mathcal L_K(x)` on log p(x).

    .. math::

        \mathcal L_K(x) = \log \frac1K \sum_{k=1}^K
            \frac{p_\theta(x, z_k)}{q_\phi(z_k \mid x)},
        \qquad z_k \sim q_\phi(z \mid x),

    a stochastic lower bound on :math:`\log p_\theta(x)` in expectation that tightens
    as :math:`K` grows (Burda et al., 2016); :math:`K = 1` is the ELBO.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    params : mapping
        Trained parameters.
    x : array_like of shape (num_images, num_pixels)
        Images.
    networks : Networks
        The networks.
    num_samples : int, default 100
        Importance samples :math:`K` per image.

    Returns
    -------
    Array of shape (num_images,)
    """
    weights = log_weights(
        rng_key, params, x, networks=networks, num_samples=num_samples
    )
    return jax.nn.logsumexp(weights, axis=0) - jnp.log(num_samples)
