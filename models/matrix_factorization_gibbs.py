r"""Conjugate block Gibbs updates for :mod:`numpyro_pgm.models.matrix_factorization`.

Given the item factors, the user factors are independent Gaussians (the
conditional version of the seed's CAVI update, ``004_cd8dd066ec9fb123.txt``,
"Example: Matrix factorization", with point values in place of
:math:`\mathbb E_q[v_j v_j^\top]`):

.. math::

    u_i \mid V, R \sim \mathcal N(\Lambda_i^{-1} h_i, \Lambda_i^{-1}), \quad
    \Lambda_i = \lambda_u I + \tau \sum_{j \in \mathcal O_i} v_j v_j^\top, \quad
    h_i = \tau \sum_{j \in \mathcal O_i} (R_{ij} - \text{offset}) v_j,

and symmetrically for :math:`v_j`. With ``biases=True`` the pair
:math:`(u_i, b_i)` is drawn jointly with design vector :math:`(v_j, 1)` and the
item bias :math:`c_j` moved to the residual. Under ``hyperprior=True`` the
precisions are Gamma:

.. math::

    \lambda_u \mid U &\sim \mathrm{Gamma}(a_0 + NK/2,\ b_0 + \|U\|_F^2 / 2), \\
    \tau \mid U, V, b, c &\sim \mathrm{Gamma}\bigl(a_0 + |\mathcal O|/2,\
    b_0 + \textstyle\sum_{(i,j) \in \mathcal O} (R_{ij} - \hat R_{ij})^2 / 2\bigr).

Each update draws *all* users (or all items) at once: the sums over
:math:`\mathcal O_i` are ``jax.ops.segment_sum`` over the observed entries, then a
batched Cholesky solve. The updates have the signature
``update(rng_key, values, data) -> dict`` of
``numpyro_pgm.fit(method="gibbs", conditionals=...)``; see
:func:`gibbs_conditionals`.

References
----------
.. [1] G. Louppe, *Foundations of Data Science*, Lecture 8, seed
   ``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization".
.. [2] R. Salakhutdinov and A. Mnih, "Bayesian probabilistic matrix factorization
   using Markov chain Monte Carlo", ICML (2008), §3.3.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

from .matrix_factorization import _MODEL_DEFAULTS, model_settings
from .matrix_factorization_checks import check_ratings

__all__ = [
    "gibbs_conditionals",
    "update_item",
    "update_precisions",
    "update_user",
]

Array = jax.Array

PRECISION_SITES = ("user_precision", "item_precision", "obs_precision")
_CHUNK = 16_384

# --------------------------------------------------- sufficient statistics (shared)


def _sum_over_ratings(function: Callable, arrays: tuple[Array, ...], chunk: int):
    r"""Sum ``function(*rows, weight)`` over the ratings, ``chunk`` rows at a time.

    Bounds memory at ``chunk`` gathered :math:`D \times D` moments; padded rows get
    weight zero.
    """
    num = arrays[0].shape[0]
    if num <= chunk:
        return function(*arrays, jnp.ones(num))
    num_chunks = -(-num // chunk)
    pad = num_chunks * chunk - num

    def split(array):
        padded = jnp.concatenate([array, jnp.zeros((pad,), array.dtype)])
        return padded.reshape(num_chunks, chunk)

    weight = split(jnp.ones(num))
    pieces = tuple(split(a) for a in arrays)
    shapes = jax.eval_shape(function, *(p[0] for p in pieces), weight[0])
    init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(total, rows):
        return jax.tree.map(jnp.add, total, function(*rows)), None

    return jax.lax.scan(body, init, (*pieces, weight))[0]


def _free_vectors(factors: Array, bias: Array | None) -> Array:
    """``(K, num)`` factors and an optional ``(num,)`` bias as ``(num, F)`` rows."""
    rows = factors.T
    return rows if bias is None else jnp.concatenate([rows, bias[:, None]], axis=-1)


def _design_moments(
    mean: Array, cov: Array | None, biases: bool
) -> tuple[Array, Array]:
    r"""Moments of the vector :math:`x` one side shows the other.

    Without biases :math:`x = f`; with biases :math:`f = (w, b)` and
    :math:`x = (w, 1, b)`, so that :math:`(u, b_u, 1)^\top (v, 1, c_v) = u^\top v +
    b_u + c_v`. Returns :math:`\mathbb E[x]` ``(num, D)`` and
    :math:`\mathbb E[x x^\top]` ``(num, D, D)`` for :math:`f \sim \mathcal N(m, S)`
    (``cov=None``: a point value).
    """
    num_free = mean.shape[-1]
    if biases:
        num_factors = num_free - 1
        ones = jnp.ones(mean.shape[:-1] + (1,), mean.dtype)
        x = jnp.concatenate([mean[:, :num_factors], ones, mean[:, num_factors:]], -1)
        position = jnp.array([*range(num_factors), num_factors + 1])
    else:
        x, position = mean, jnp.arange(num_free)
    second = x[:, :, None] * x[:, None, :]
    if cov is not None:
        second = second.at[:, position[:, None], position[None, :]].add(cov)
    return x, second


def _own_moments(mean: Array, cov: Array, biases: bool) -> tuple[Array, Array]:
    r"""Moments of the augmented vector :math:`a = (f, 1)` (biases) or :math:`f`."""
    if biases:
        ones = jnp.ones(mean.shape[:-1] + (1,), mean.dtype)
        mean = jnp.concatenate([mean, ones], -1)
        cov = jnp.pad(cov, ((0, 0), (0, 1), (0, 1)))
    return mean, mean[:, :, None] * mean[:, None, :] + cov


def _natural_parameters(
    own: Array,
    other: Array,
    residual: Array,
    design_mean: Array,
    design_second: Array,
    *,
    num_own: int,
    prior_precision: Array,
    noise_precision: Array,
    chunk: int = _CHUNK,
) -> tuple[Array, Array]:
    r"""Precision :math:`\Lambda` ``(num_own, F, F)`` and shift :math:`h` of each row.

    .. math::

        \Lambda_i = \mathrm{diag}(\lambda) + \tau \sum_{n: own_n = i}
        \mathbb E[x x^\top]_{FF}, \qquad
        h_i = \tau \sum_{n: own_n = i} \bigl(r_n \mathbb E[x]_F
        - \mathbb E[x x^\top]_{F, c}\bigr),

    with :math:`F` the free coordinates and :math:`c` the constant one (biases).
    """
    num_free = prior_precision.shape[-1]
    constant = design_mean.shape[-1] > num_free

    def statistics(own_rows, other_rows, residual_rows, weight):
        mean = design_mean[other_rows] * weight[:, None]
        second = design_second[other_rows] * weight[:, None, None]
        linear = residual_rows[:, None] * mean[:, :num_free]
        if constant:
            linear = linear - second[:, :num_free, num_free]
        precision = jax.ops.segment_sum(
            second[:, :num_free, :num_free], own_rows, num_own
        )
        return precision, jax.ops.segment_sum(linear, own_rows, num_own)

    precision, shift = _sum_over_ratings(statistics, (own, other, residual), chunk)
    precision = noise_precision * precision + jnp.diag(prior_precision)
    return precision, noise_precision * shift


def _gaussian(precision: Array, shift: Array) -> tuple[Array, Array]:
    """Cholesky factor of the precision and the mean, batched over rows."""
    cholesky = jnp.linalg.cholesky(precision)
    return cholesky, cho_solve((cholesky, True), shift[..., None])[..., 0]


def _draw_gaussian(rng_key: Array, precision: Array, shift: Array) -> Array:
    r"""One draw of :math:`\mathcal N(\Lambda^{-1} h, \Lambda^{-1})` per row."""
    cholesky, mean = _gaussian(precision, shift)
    noise = jax.random.normal(rng_key, mean.shape, mean.dtype)
    return (
        mean
        + solve_triangular(cholesky, noise[..., None], lower=True, trans="T")[..., 0]
    )


def _prior_precision(settings: Mapping[str, Any], factor_precision: Any) -> Array:
    """Diagonal prior precision of a free vector (factors, then the bias)."""
    values = jnp.full(settings["num_factors"], factor_precision)
    if settings["biases"]:
        values = jnp.append(values, settings["bias_scale"] ** -2.0)
    return values


# ----------------------------------------------------------------------- updates


def _ratings(data: Mapping[str, Any]) -> tuple[dict[str, Any], Array, Array, Array]:
    settings = model_settings(data)
    if settings.get("rating") is None:
        raise ValueError(
            "the Gibbs conditionals need the observed ratings, but data['rating'] "
            "is missing or None. Pass the same data as to fit, with data['rating']."
        )
    user, item, rating = check_ratings(
        settings["user"],
        settings["item"],
        settings["rating"],
        num_users=settings["num_users"],
        num_items=settings["num_items"],
        num_factors=settings["num_factors"],
    )
    return settings, user, item, rating


def _precision_values(values: Mapping[str, Array], settings: Mapping[str, Any]):
    if settings["hyperprior"]:
        return tuple(values[name] for name in PRECISION_SITES)
    return tuple(
        settings[name] ** -2.0 for name in ("user_scale", "item_scale", "obs_scale")
    )


def _update_side(rng_key, values, data, side: str) -> dict[str, Array]:
    settings, user, item, rating = _ratings(data)
    other = "item" if side == "user" else "user"
    biases = settings["biases"]
    other_free = _free_vectors(
        values[f"{other}_factors"], values[f"{other}_bias"] if biases else None
    )
    design_mean, design_second = _design_moments(other_free, None, biases)
    user_precision, item_precision, noise_precision = _precision_values(
        values, settings
    )
    own, other_index = (user, item) if side == "user" else (item, user)
    precision, shift = _natural_parameters(
        own,
        other_index,
        rating - settings["offset"],
        design_mean,
        design_second,
        num_own=settings[f"num_{side}s"],
        prior_precision=_prior_precision(
            settings, user_precision if side == "user" else item_precision
        ),
        noise_precision=noise_precision,
    )
    free = _draw_gaussian(rng_key, precision, shift)
    num_factors = settings["num_factors"]
    out = {f"{side}_factors": free[:, :num_factors].T}
    if biases:
        out[f"{side}_bias"] = free[:, num_factors]
    return out


def update_user(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw every :math:`u_i` (and :math:`b_i`) from its full conditional at once.

    Parameters
    ----------
    rng_key : Array
        PRNG key.
    values : mapping
        Current values of all latent sites (``item_factors``, ``item_bias``,
        precisions, ...).
    data : mapping
        The ``data`` given to ``fit``: ``user``, ``item``, ``rating``, the sizes and
        any hyperparameters of :func:`numpyro_pgm.models.matrix_factorization.model`.

    Returns
    -------
    dict
        ``user_factors`` ``(num_factors, num_users)`` and, with biases,
        ``user_bias`` ``(num_users,)``.
    """
    return _update_side(rng_key, values, data, "user")


def update_item(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw every :math:`v_j` (and :math:`c_j`) from its full conditional at once.

    The mirror image of :func:`update_user`; returns ``item_factors`` and, with
    biases, ``item_bias``.
    """
    return _update_side(rng_key, values, data, "item")


def update_precisions(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw :math:`\lambda_u, \lambda_v, \tau` from their Gamma full conditionals.

    Only for ``hyperprior=True``; returns ``user_precision``, ``item_precision``
    and ``obs_precision``.
    """
    settings, user, item, rating = _ratings(data)
    shape, rate = settings["precision_shape"], settings["precision_rate"]
    user_factors, item_factors = values["user_factors"], values["item_factors"]
    predicted = settings["offset"] + jnp.sum(
        user_factors[:, user] * item_factors[:, item], axis=0
    )
    if settings["biases"]:
        predicted = predicted + values["user_bias"][user] + values["item_bias"][item]
    squares = (
        jnp.sum(user_factors**2),
        jnp.sum(item_factors**2),
        jnp.sum((rating - predicted) ** 2),
    )
    counts = (user_factors.size, item_factors.size, rating.size)
    keys = jax.random.split(rng_key, 3)
    return {
        name: jax.random.gamma(key, shape + count / 2.0) / (rate + square / 2.0)
        for name, key, count, square in zip(
            PRECISION_SITES, keys, counts, squares, strict=True
        )
    }


def gibbs_conditionals(
    **model_kwargs: Any,
) -> dict[str | tuple[str, ...], Callable]:
    """Return the block updates for ``fit(method="gibbs", conditionals=...)``.

    Parameters
    ----------
    **model_kwargs
        Keyword arguments of the model; only ``biases`` and ``hyperprior`` matter,
        so ``gibbs_conditionals(**data)`` works.

    Returns
    -------
    dict
        ``{"user_factors": update_user, "item_factors": update_item}``, with the
        bias sites joined to their factor blocks (``("user_factors",
        "user_bias")``) when ``biases=True``, and ``("user_precision",
        "item_precision", "obs_precision"): update_precisions`` when
        ``hyperprior=True``.

    Examples
    --------
    >>> from numpyro_pgm.models import matrix_factorization_gibbs as mfg
    >>> list(mfg.gibbs_conditionals(biases=True))
    [('user_factors', 'user_bias'), ('item_factors', 'item_bias')]
    """
    allowed = set(_MODEL_DEFAULTS) | {"user", "item", "num_users", "num_items"}
    allowed |= {"num_factors"}
    unknown = sorted(set(model_kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"gibbs_conditionals got unknown argument(s) {unknown}; it takes the "
            f"keyword arguments of matrix_factorization.model: {sorted(allowed)}."
        )
    biases = bool(model_kwargs.get("biases", False))
    hyperprior = bool(model_kwargs.get("hyperprior", False))
    if model_kwargs.get("subsample_size") is not None:
        raise ValueError(
            "gibbs_conditionals uses every rating; got subsample_size="
            f"{model_kwargs['subsample_size']!r}. Drop subsample_size for Gibbs."
        )
    conditionals: dict[str | tuple[str, ...], Callable] = {}
    for side, update in (("user", update_user), ("item", update_item)):
        key = (f"{side}_factors", f"{side}_bias") if biases else f"{side}_factors"
        conditionals[key] = update
    if hyperprior:
        conditionals[PRECISION_SITES] = update_precisions
    return conditionals
