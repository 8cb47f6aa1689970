r"""Variational autoencoder: a deep latent-variable model with an amortised guide.

For images :math:`x_n \in \mathbb{R}^D` (flattened, :math:`D` pixels) and a latent
code :math:`z_n \in \mathbb{R}^L`, :math:`n = 1, \dots, N`, the generative process
is (seed ``003_02afaf35b30b64a9.txt``, section 6.3, eq. (6.13); seed
``000_7a39c8fab34c037d.txt``, section 7)

.. math::

    z_n &\sim \mathcal{N}(0, I_L), \\
    x_n \mid z_n &\sim \prod_{d=1}^D \mathrm{Bernoulli}\bigl(x_{nd};\,
        \sigma(f_\theta(z_n)_d)\bigr)
        \quad \text{or} \quad \mathcal{N}\bigl(x_n;\, f_\theta(z_n),\,
        s_\theta^2 I_D\bigr),

with a decoder network :math:`f_\theta` (a multilayer perceptron) and, for the
Gaussian decoder, one learned noise scale :math:`s_\theta`. The guide is the
amortised encoder of eq. (6.14),

.. math::

    q_\phi(z_n \mid x_n) = \mathcal{N}\bigl(z_n;\, \mu_\phi(x_n),\,
        \mathrm{diag}\, \sigma_\phi^2(x_n)\bigr),
    \qquad \sigma_\phi = \mathrm{softplus}(\cdot) + 10^{-4},

and training maximises the ELBO, eq. (6.6),

.. math::

    \mathcal{L}(\theta, \phi; x_n) = \mathbb{E}_{q_\phi(z \mid x_n)}
        [\log p_\theta(x_n \mid z)]
        - \beta\, \mathrm{KL}\bigl(q_\phi(z \mid x_n) \,\|\, p(z)\bigr),

with :math:`\beta = 1` for the VAE and :math:`\beta \ne 1` for the
:math:`\beta`-VAE (seed ``002_9628f16bcd0397bc.txt``, reference [4]). The weight is
a :func:`numpyro.handlers.scale` on the ``z`` site of *both* the model and the guide,
so that ``Trace_ELBO`` (Monte Carlo KL through the reparameterisation
:math:`z = \mu + \sigma \odot \epsilon`, eqs. (6.9)-(6.12)) and
``TraceMeanField_ELBO`` (the analytic KL of :func:`kl_divergence`, eq. (6.15))
estimate the same objective.

Sites and plates: ``z`` (image, latent) and ``x`` (image, pixel) in the plate
``image``. The networks are `Equinox <https://docs.kidger.site/equinox/>`_ modules
registered as the parameter sites ``encoder$params`` (guide) and ``decoder$params``
(model) through :func:`numpyro.contrib.module.eqx_module`; build them with
:func:`init_networks` (from :mod:`numpyro_pgm.models.vae_networks`, re-exported
here) and pass them to both functions as ``networks``.

Minibatches: pass a batch as ``x`` and the data-set size as ``num_images``; the
plate ``numpyro.plate("image", num_images, subsample_size=len(x))`` then scales the
log density by :math:`N / B`, so the loss is an unbiased estimate of the full-data
negative ELBO. :mod:`numpyro_pgm.models.vae_training` runs epochs over shuffled
minibatches with checkpoints; :mod:`numpyro_pgm.models.vae_evaluation` estimates the
ELBO and the importance-weighted bound on :math:`\log p(x)`, and reconstructs,
samples and interpolates images.

Data for the Bernoulli decoder must lie in :math:`[0, 1]`. Binary images (see
:func:`binarize`) make :math:`p_\theta(x \mid z)` a probability mass function and
the ELBO a bound on a genuine log-likelihood. Grey levels in :math:`(0, 1)` are
accepted, but then the Bernoulli "likelihood" is the cross-entropy, which is not
normalised over :math:`[0, 1]`: its ELBO is not a bound on any density (the
*continuous Bernoulli* caveat of Loaiza-Ganem and Cunningham [4]_). The Gaussian
decoder takes any finite values.

Inputs are checked when they are concrete: ``x`` must be a 2-D array with one row
of ``networks.num_pixels`` pixels per image, finite, and within :math:`[0, 1]` for
the Bernoulli decoder. Inside ``jit`` only the shape is checked.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: section 6.3, eqs. (6.6)-(6.15) (autoencoding
   variational Bayes).
.. [2] W. Rodriguez, *Learning Distributions with Variational Autoencoders* (2025),
   seed ``002_9628f16bcd0397bc.txt``: the ELBO, the analytic KL of a Gaussian
   encoder, the reparameterisation trick, latent spaces, VAE embeddings as
   classifier features.
.. [3] D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR (2014).
.. [4] G. Loaiza-Ganem and J. P. Cunningham, "The continuous Bernoulli: fixing a
   pervasive error in variational autoencoders", NeurIPS (2019).
.. [5] I. Higgins et al., ":math:`\beta`-VAE: learning basic visual concepts with a
   constrained variational framework", ICLR (2017).
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.contrib.module import eqx_module

from .vae_networks import (
    LIKELIHOODS,
    MIN_SCALE,
    Decoder,
    Encoder,
    Networks,
    _check_positive_int,
    init_networks,
)

__all__ = [
    "LIKELIHOODS",
    "MIN_SCALE",
    "Decoder",
    "Encoder",
    "Networks",
    "binarize",
    "check_images",
    "guide",
    "init_networks",
    "kl_divergence",
    "model",
    "simulate",
]

MSG_SHAPE = (
    "{name} must be a 2-D array of shape (num_images, {num_pixels}): one row of "
    "{num_pixels} pixels per image, as the networks were built with "
    "num_pixels={num_pixels}; got shape {shape}. Flatten images with "
    "`x.reshape(len(x), -1)`, or build networks for this image size with "
    "`init_networks(rng_key, num_pixels=...)`."
)
MSG_RANGE = (
    "{name} must lie in [0, 1] for the Bernoulli decoder; got values in "
    "[{low:.4g}, {high:.4g}]. Scale the images to [0, 1] (digits: `X / 16`), "
    "binarise them with `vae.binarize`, or use `likelihood='gaussian'`."
)
MSG_FINITE = (
    "{name} must be finite; got {count} NaN or infinite pixel(s) in "
    "{rows} image(s) (first at row {first}). Drop or impute those images first."
)


def check_images(x: Any, networks: Networks, name: str = "x") -> jax.Array:
    """Validate a batch of images for ``networks`` and return it as an array.

    Parameters
    ----------
    x : array_like of shape (num_images, num_pixels)
        Images, one flattened image per row.
    networks : Networks
        The networks the images are for (their ``num_pixels`` and likelihood).
    name : str, default "x"
        The argument name used in error messages.

    Returns
    -------
    Array
        ``x`` as a floating-point JAX array.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D with ``networks.num_pixels`` columns, holds NaN or
        infinite pixels, or (Bernoulli decoder) values outside :math:`[0, 1]`. Value
        checks are skipped for traced (jitted) arrays.
    """
    if not isinstance(networks, Networks):
        raise TypeError(
            "networks must be a vae.Networks built by `vae.init_networks`; got "
            f"{type(networks).__name__}."
        )
    shape = np.shape(x)
    if len(shape) != 2 or shape[1] != networks.num_pixels:
        raise ValueError(
            MSG_SHAPE.format(name=name, num_pixels=networks.num_pixels, shape=shape)
        )
    if isinstance(x, jax.core.Tracer):
        return x
    values = np.asarray(x)
    if not np.issubdtype(values.dtype, np.number) and values.dtype != bool:
        raise TypeError(f"{name} must hold numbers; got dtype {values.dtype}.")
    values = values.astype(np.float32 if values.dtype != np.float64 else np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(
            MSG_FINITE.format(
                name=name,
                count=int((~finite).sum()),
                rows=bad_rows.size,
                first=int(bad_rows[0]),
            )
        )
    if networks.likelihood == "bernoulli" and values.size:
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(MSG_RANGE.format(name=name, low=low, high=high))
    return jnp.asarray(values)


def _check_beta(beta: Any) -> None:
    if isinstance(beta, jax.core.Tracer):
        return
    if not np.ndim(beta) == 0 or not np.isfinite(beta) or not beta > 0:
        raise ValueError(
            f"beta must be a positive finite number (1 for the VAE ELBO, another "
            f"value for a beta-VAE); got {beta!r}."
        )


def _batch_sizes(
    x: Any, num_images: int | None, batch_size: int | None
) -> tuple[int, int]:
    if x is not None:
        batch = int(np.shape(x)[0])
    elif batch_size is not None:
        batch = _check_positive_int("batch_size", batch_size)
    elif num_images is not None:
        batch = _check_positive_int("num_images", num_images)
    else:
        batch = 1
    total = batch if num_images is None else int(num_images)
    if total < batch:
        raise ValueError(
            f"num_images (the data-set size, {total}) must be >= the number of "
            f"images in the batch ({batch}); pass num_images=len(full_data)."
        )
    return total, batch


def model(
    x: ArrayLike | None = None,
    *,
    networks: Networks,
    num_images: int | None = None,
    batch_size: int | None = None,
    beta: float = 1.0,
) -> None:
    r"""Run the VAE's generative model :math:`p(z)\, p_\theta(x \mid z)`.

    Parameters
    ----------
    x : array_like of shape (batch, num_pixels), optional
        Observed images (a minibatch or the whole data set); None to generate.
    networks : Networks
        From :func:`init_networks`; its decoder is the parameter site
        ``decoder$params``.
    num_images : int, optional
        Size :math:`N` of the whole data set when ``x`` is a minibatch; the log
        density is scaled by ``num_images / len(x)``. Defaults to ``len(x)``.
    batch_size : int, optional
        Number of images to generate when ``x`` is None (default ``num_images``,
        else 1).
    beta : float, default 1
        Weight :math:`\beta` of the KL term (a scale on the ``z`` site).
    """
    if x is not None:
        x = check_images(x, networks)
    _check_beta(beta)
    total, batch = _batch_sizes(x, num_images, batch_size)
    decoder = eqx_module("decoder", networks.decoder)
    prior = dist.Normal(jnp.zeros(networks.latent_dims), 1.0).to_event(1)
    with numpyro.plate("image", total, subsample_size=batch):
        with handlers.scale(scale=beta):
            z = numpyro.sample("z", prior)
        out = jax.vmap(decoder)(z)
        numpyro.sample("x", decoder.distribution(out), obs=x)


def guide(
    x: ArrayLike | None = None,
    *,
    networks: Networks,
    num_images: int | None = None,
    batch_size: int | None = None,
    beta: float = 1.0,
) -> None:
    r"""Run the amortised guide, the encoder :math:`q_\phi(z \mid x)`.

    :math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,
    \sigma^2_\phi(x))`. Takes the arguments of :func:`model`; ``x`` is required.
    The ``z`` site carries the same :math:`\beta` scale as in the model, so the
    ELBO's KL term is weighted by :math:`\beta` under both ``Trace_ELBO`` and
    ``TraceMeanField_ELBO``.
    """
    if x is None:
        raise ValueError(
            "x must be given to the guide: the encoder q(z | x) needs images. To "
            "generate images, run the model alone (x=None)."
        )
    x = check_images(x, networks)
    _check_beta(beta)
    total, batch = _batch_sizes(x, num_images, batch_size)
    encoder = eqx_module("encoder", networks.encoder)
    loc, scale = jax.vmap(encoder)(x)
    with numpyro.plate("image", total, subsample_size=batch):
        with handlers.scale(scale=beta):
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))


def kl_divergence(loc: ArrayLike, scale: ArrayLike) -> jax.Array:
    r"""Return the analytic KL divergence of a diagonal Gaussian from N(0, I).

    :math:`\mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma^2) \,\|\,
    \mathcal N(0, I))`, summed over the last axis:

    .. math::

        \mathrm{KL} = \frac12 \sum_{j=1}^L
            \bigl(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\bigr),

    the KL term of the seed's eq. (6.15) (seed ``003_02afaf35b30b64a9.txt``,
    section 6.3; seed ``002_9628f16bcd0397bc.txt``, "KL Divergence: Normal vs.
    Standard Normal").

    Parameters
    ----------
    loc, scale : array_like of shape (..., L)
        Means and standard deviations of the Gaussian.

    Returns
    -------
    Array of shape (...)
    """
    loc, scale = jnp.asarray(loc), jnp.asarray(scale)
    return 0.5 * jnp.sum(loc**2 + scale**2 - 1.0 - 2.0 * jnp.log(scale), axis=-1)


def binarize(x: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """Binary images: 1 where a pixel of ``x`` (scaled to [0, 1]) exceeds threshold.

    Parameters
    ----------
    x : array_like
        Pixels in :math:`[0, 1]`.
    threshold : float, default 0.5
        A fixed threshold (not a random draw, so the data set is deterministic).

    Returns
    -------
    numpy.ndarray of float32, same shape as ``x``
    """
    return (np.asarray(x) > threshold).astype(np.float32)


def simulate(
    rng_key: jax.Array,
    *,
    networks: Networks,
    num_images: int,
    params: dict[str, Any] | None = None,
) -> dict[str, jax.Array]:
    r"""Draw images by ancestral sampling of :func:`model`.

    First :math:`z \sim \mathcal N(0, I)`, then :math:`x \sim p_\theta(x \mid z)`.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    networks : Networks
        The networks; their own weights are used unless ``params`` is given.
    num_images : int
        Number of images.
    params : dict, optional
        Trained parameters (``svi.get_params(state)`` or a training result's
        ``params``); only ``decoder$params`` is used.

    Returns
    -------
    dict of str to Array
        ``x`` (num_images, num_pixels) and the true latents ``z`` (num_images, L).

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import vae
    >>> nets = vae.init_networks(jax.random.key(0), num_pixels=64, latent_dims=2)
    >>> data = vae.simulate(jax.random.key(1), networks=nets, num_images=5)
    >>> data["x"].shape, data["z"].shape
    ((5, 64), (5, 2))
    """
    num_images = _check_positive_int("num_images", num_images)
    decoder_params = None if params is None else params["decoder$params"]
    return _simulate(rng_key, networks, decoder_params, num_images)


@eqx.filter_jit
def _simulate(rng_key, networks, decoder_params, num_images):
    generative = model
    if decoder_params is not None:
        generative = handlers.substitute(model, data={"decoder$params": decoder_params})
    trace = handlers.trace(handlers.seed(generative, rng_key)).get_trace(
        networks=networks, batch_size=num_images
    )
    return {"x": trace["x"]["value"], "z": trace["z"]["value"]}
