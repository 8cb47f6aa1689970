r"""The encoder and decoder networks of the VAE, as Equinox modules.

Both are multilayer perceptrons (:class:`equinox.nn.MLP`). The encoder maps an
image :math:`x \in \mathbb{R}^D` to the mean and standard deviation of
:math:`q_\phi(z \mid x)` (seed ``003_02afaf35b30b64a9.txt``, section 6.3, eq.
(6.14)); the decoder maps a code :math:`z \in \mathbb{R}^L` to Bernoulli logits
or Gaussian means of :math:`p_\theta(x \mid z)`. :mod:`numpyro_pgm.models.vae`
registers them as parameter sites through :func:`numpyro.contrib.module.eqx_module`
and re-exports every name here.

Equinox was chosen because its networks are plain JAX pytrees: one parameter site
per network, checkpoints that are just the flattened leaves, and a small dependency
(``jaxtyping`` and ``wadler-lindig``).
"""

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

__all__ = [
    "LIKELIHOODS",
    "MIN_SCALE",
    "Decoder",
    "Encoder",
    "Networks",
    "init_networks",
]

LIKELIHOODS = ("bernoulli", "gaussian")
"""The decoder likelihoods :math:`p_\\theta(x \\mid z)`."""

MIN_SCALE = 1e-4
"""Floor added to the encoder's standard deviations (keeps :math:`\\log\\sigma`
finite)."""


class Encoder(eqx.Module):
    r"""The encoder :math:`x \mapsto (\mu_\phi(x), \sigma_\phi(x))` of one image.

    Attributes
    ----------
    mlp : equinox.nn.MLP
        Maps ``num_pixels`` inputs to ``2 * latent_dims`` outputs: the means and
        the pre-softplus standard deviations.
    latent_dims : int
        Size :math:`L` of the latent code.
    """

    mlp: eqx.nn.MLP
    latent_dims: int = eqx.field(static=True)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        r"""Return the mean and standard deviation of :math:`q(z \mid x)`."""
        out = self.mlp(x)
        loc, raw_scale = out[: self.latent_dims], out[self.latent_dims :]
        return loc, jax.nn.softplus(raw_scale) + MIN_SCALE


class Decoder(eqx.Module):
    r"""The decoder :math:`z \mapsto f_\theta(z)` of one latent code.

    Attributes
    ----------
    mlp : equinox.nn.MLP
        Maps ``latent_dims`` inputs to ``num_pixels`` outputs: Bernoulli logits or
        Gaussian means.
    log_scale : Array or None
        Log of the Gaussian decoder's noise scale :math:`s_\theta` (a scalar);
        None for the Bernoulli decoder.
    likelihood : {"bernoulli", "gaussian"}
        The observation model.
    """

    mlp: eqx.nn.MLP
    log_scale: jax.Array | None
    likelihood: str = eqx.field(static=True)

    def __call__(self, z: jax.Array) -> jax.Array:
        """Return the logits (Bernoulli) or the means (Gaussian) of the pixels."""
        return self.mlp(z)

    def distribution(self, out: jax.Array) -> dist.Distribution:
        """Return the distribution of an image given the decoder outputs ``out``."""
        if self.likelihood == "bernoulli":
            # Inputs are validated at the boundary (check_images); skipping
            # NumPyro's support check lets grey levels in [0, 1] through without
            # a warning (the continuous-Bernoulli caveat of the module docstring).
            return dist.Bernoulli(logits=out, validate_args=False).to_event(1)
        scale = jnp.broadcast_to(jnp.exp(self.log_scale), out.shape)
        return dist.Normal(out, scale).to_event(1)


class Networks(eqx.Module):
    """Encoder and decoder of a VAE, with the sizes they were built for.

    Attributes
    ----------
    encoder : Encoder
        The amortised guide's network (parameter site ``encoder$params``).
    decoder : Decoder
        The model's network (parameter site ``decoder$params``).
    num_pixels : int
        Pixels per (flattened) image, :math:`D`.
    latent_dims : int
        Size of the latent code, :math:`L`.
    image_shape : tuple of int
        Shape to reshape one image to for plotting, e.g. ``(8, 8)``.
    """

    encoder: Encoder
    decoder: Decoder
    num_pixels: int = eqx.field(static=True)
    latent_dims: int = eqx.field(static=True)
    image_shape: tuple[int, ...] = eqx.field(static=True)

    @property
    def likelihood(self) -> str:
        """The decoder likelihood, ``"bernoulli"`` or ``"gaussian"``."""
        return self.decoder.likelihood


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    return int(value)


def init_networks(
    rng_key: jax.Array,
    *,
    num_pixels: int,
    latent_dims: int = 2,
    hidden_size: int = 128,
    num_hidden_layers: int = 1,
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli",
    image_shape: tuple[int, ...] | None = None,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
) -> Networks:
    r"""Build the encoder and decoder networks with random initial weights.

    Both are multilayer perceptrons with ``num_hidden_layers`` hidden layers of
    ``hidden_size`` units: the encoder maps :math:`D` pixels to :math:`2L`
    outputs, the decoder :math:`L` latents to :math:`D` outputs. With
    ``num_hidden_layers=0`` both are affine maps (the decoder of a linear-Gaussian
    factor-analysis model).

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key for the initial weights.
    num_pixels : int
        Pixels per flattened image, :math:`D`.
    latent_dims : int, default 2
        Size :math:`L` of the latent code.
    hidden_size : int, default 128
        Units per hidden layer.
    num_hidden_layers : int, default 1
        Hidden layers in each network (0 for affine networks).
    likelihood : {"bernoulli", "gaussian"}, default "bernoulli"
        The decoder likelihood; the Gaussian one learns a scalar noise scale
        (initialised to 1).
    image_shape : tuple of int, optional
        Shape of one image for plotting; defaults to a square if ``num_pixels`` is
        a perfect square, else ``(num_pixels,)``.
    activation : callable, default ``jax.nn.relu``
        Hidden-layer activation.

    Returns
    -------
    Networks

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import vae
    >>> nets = vae.init_networks(jax.random.key(0), num_pixels=64, latent_dims=2)
    >>> nets.image_shape, nets.likelihood
    ((8, 8), 'bernoulli')
    """
    num_pixels = _check_positive_int("num_pixels", num_pixels)
    latent_dims = _check_positive_int("latent_dims", latent_dims)
    hidden_size = _check_positive_int("hidden_size", hidden_size)
    num_hidden_layers = _check_positive_int("num_hidden_layers", num_hidden_layers, 0)
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"likelihood must be one of {LIKELIHOODS}; got {likelihood!r}. Use "
            "'bernoulli' for images in [0, 1] (binary ideally) and 'gaussian' for "
            "real-valued pixels."
        )
    if image_shape is None:
        side = int(round(np.sqrt(num_pixels)))
        image_shape = (side, side) if side * side == num_pixels else (num_pixels,)
    image_shape = tuple(int(s) for s in image_shape)
    if int(np.prod(image_shape)) != num_pixels:
        raise ValueError(
            f"image_shape must have num_pixels={num_pixels} elements; got "
            f"{image_shape}."
        )
    encoder_key, decoder_key = jax.random.split(rng_key)
    mlp_options = dict(
        width_size=hidden_size, depth=num_hidden_layers, activation=activation
    )
    encoder = Encoder(
        eqx.nn.MLP(num_pixels, 2 * latent_dims, key=encoder_key, **mlp_options),
        latent_dims,
    )
    log_scale = jnp.zeros(()) if likelihood == "gaussian" else None
    decoder = Decoder(
        eqx.nn.MLP(latent_dims, num_pixels, key=decoder_key, **mlp_options),
        log_scale,
        likelihood,
    )
    return Networks(encoder, decoder, num_pixels, latent_dims, image_shape)
