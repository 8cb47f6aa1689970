r"""Bayesian probabilistic matrix factorisation on the observed ratings only.

User :math:`i \in \{1..N\}` rates item :math:`j \in \{1..M\}`; only the entries
:math:`(i, j) \in \mathcal O` are observed. The model of the seed
(``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization") is

.. math::

    u_i &\sim \mathcal N(0, \sigma_u^2 I_K), \qquad
    v_j \sim \mathcal N(0, \sigma_v^2 I_K), \\
    R_{ij} \mid u_i, v_j &\sim \mathcal N(u_i^\top v_j, \sigma^2),
    \qquad (i, j) \in \mathcal O,

extended with two options. ``biases=True`` adds a user and an item bias and a
fixed ``offset`` (for example the training mean),

.. math::

    b_i, c_j \sim \mathcal N(0, \sigma_b^2), \qquad
    R_{ij} \sim \mathcal N(\text{offset} + b_i + c_j + u_i^\top v_j, \sigma^2),

and ``hyperprior=True`` replaces the fixed precisions by Gamma-distributed ones
(Bayesian PMF [2]_ with scalar precisions),

.. math::

    \lambda_u, \lambda_v, \tau \sim \mathrm{Gamma}(a_0, b_0), \qquad
    \sigma_u^2 = 1/\lambda_u,\ \sigma_v^2 = 1/\lambda_v,\ \sigma^2 = 1/\tau.

The data are three arrays of equal length, one entry per observed rating:
``user`` and ``item`` (integer codes from 0) and ``rating``; the model never forms
the dense :math:`N \times M` matrix. With ``subsample_size=B`` the ``rating`` plate
draws minibatches of :math:`B` ratings, so an SVI step costs
:math:`O((N + M) K + B K)` whatever the number of ratings.

Sites and plates. Factor matrices are stored *factor-major*:
``user_factors`` has shape ``(num_factors, num_users)`` (plates ``factor``,
``user``) and ``item_factors`` ``(num_factors, num_items)`` (``factor``, ``item``),
so the ``user`` plate is the rightmost dimension of every user-level site (the
factors and ``user_bias``), as AutoGuides require of a plate used twice; row
:math:`i` of the seed's :math:`U` is ``user_factors[:, i]``. Optional sites:
``user_bias`` (user), ``item_bias`` (item), ``user_precision``,
``item_precision``, ``obs_precision``. The ratings are the site ``obs`` in the
plate ``rating`` (a site may not share its plate's name).

Companion modules: :mod:`numpyro_pgm.models.matrix_factorization_cavi` (the seed's
CAVI), :mod:`numpyro_pgm.models.matrix_factorization_gibbs` (conjugate block Gibbs
updates for ``fit(method="gibbs")``),
:mod:`numpyro_pgm.models.matrix_factorization_init` (the spectral start that avoids
local optima), :mod:`numpyro_pgm.models.matrix_factorization_predict` (draws of the
CAVI posterior, and held-out predictions with intervals from any method's result)
and :mod:`numpyro_pgm.models.matrix_factorization_checks` (input validation).

References
----------
.. [1] G. Louppe, *Foundations of Data Science*, Lecture 8: Variational inference,
   seed ``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization".
.. [2] R. Salakhutdinov and A. Mnih, "Bayesian probabilistic matrix factorization
   using Markov chain Monte Carlo", ICML (2008).
.. [3] R. Salakhutdinov and A. Mnih, "Probabilistic matrix factorization", NeurIPS
   (2007).
"""

import inspect
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.distributions import constraints

from .matrix_factorization_checks import (
    _check_scale,
    _check_size,
    _is_concrete,
    check_ratings,
)

__all__ = ["mean_field_guide", "model", "model_settings", "simulate"]

Array = jax.Array

# ---------------------------------------------------------------------------- model


def model(
    user: ArrayLike,
    item: ArrayLike,
    rating: ArrayLike | None = None,
    *,
    num_users: int,
    num_items: int,
    num_factors: int,
    user_scale: float = 1.0,
    item_scale: float = 1.0,
    obs_scale: float = 1.0,
    biases: bool = False,
    bias_scale: float = 1.0,
    offset: float = 0.0,
    hyperprior: bool = False,
    precision_shape: float = 1.0,
    precision_rate: float = 1.0,
    subsample_size: int | None = None,
) -> None:
    r"""Probabilistic matrix factorisation on the observed entries (seed example).

    .. math::

        u_i \sim \mathcal N(0, \sigma_u^2 I), \quad
        v_j \sim \mathcal N(0, \sigma_v^2 I), \quad
        R_{ij} \sim \mathcal N(\text{offset} + b_i + c_j + u_i^\top v_j, \sigma^2)

    with :math:`b = c = 0` unless ``biases=True``, and Gamma precisions
    :math:`\lambda_u = \sigma_u^{-2}`, :math:`\lambda_v = \sigma_v^{-2}`,
    :math:`\tau = \sigma^{-2}` when ``hyperprior=True``.

    Parameters
    ----------
    user, item : array_like of int, shape (num_ratings,)
        The user and item code of each observed rating, in ``[0, num_users)`` and
        ``[0, num_items)``.
    rating : array_like of shape (num_ratings,), optional
        The observed ratings; ``None`` samples them (the model is generative).
    num_users, num_items : int
        :math:`N` and :math:`M`; users or items without ratings keep their prior.
    num_factors : int
        The rank :math:`K \ge 1`.
    user_scale, item_scale, obs_scale : float
        :math:`\sigma_u`, :math:`\sigma_v`, :math:`\sigma` (ignored when
        ``hyperprior=True``).
    biases : bool
        Add ``user_bias`` and ``item_bias`` with prior sd ``bias_scale``.
    bias_scale : float
        :math:`\sigma_b`.
    offset : float
        A fixed global mean added to every rating.
    hyperprior : bool
        Sample ``user_precision``, ``item_precision`` and ``obs_precision`` from
        :math:`\mathrm{Gamma}(a_0, b_0)` (shape ``precision_shape``, rate
        ``precision_rate``).
    precision_shape, precision_rate : float
        :math:`a_0` and :math:`b_0`.
    subsample_size : int, optional
        Minibatch size of the ``rating`` plate for SVI: each evaluation uses
        ``subsample_size`` ratings drawn uniformly with replacement (O(B), where
        NumPyro's default shuffle is O(num_ratings)), the likelihood scaled by
        ``num_ratings / subsample_size``. Not for MCMC.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import matrix_factorization as mf
    >>> user, item = np.array([0, 0, 1]), np.array([0, 2, 1])
    >>> with handlers.seed(rng_seed=0):
    ...     trace = handlers.trace(mf.model).get_trace(
    ...         user, item, num_users=2, num_items=3, num_factors=4)
    >>> trace["user_factors"]["value"].shape, trace["obs"]["value"].shape
    ((4, 2), (3,))

    References
    ----------
    .. [1] G. Louppe, seed ``004_cd8dd066ec9fb123.txt``, "Example: Matrix
       factorization".
    .. [2] R. Salakhutdinov and A. Mnih, "Bayesian probabilistic matrix
       factorization using Markov chain Monte Carlo", ICML (2008).
    """
    user, item, rating = check_ratings(
        user,
        item,
        rating,
        num_users=num_users,
        num_items=num_items,
        num_factors=num_factors,
    )
    num_ratings = user.shape[0]
    if subsample_size is not None:
        _check_size(
            "subsample_size", subsample_size, f" and <= {num_ratings}", num_ratings
        )
        subsample_size = min(int(subsample_size), num_ratings)
    for name, value in (
        ("user_scale", user_scale),
        ("item_scale", item_scale),
        ("obs_scale", obs_scale),
        ("bias_scale", bias_scale),
        ("precision_shape", precision_shape),
        ("precision_rate", precision_rate),
    ):
        _check_scale(name, value)
    if hyperprior:
        gamma = dist.Gamma(precision_shape, precision_rate)
        user_scale = jax.lax.rsqrt(numpyro.sample("user_precision", gamma))
        item_scale = jax.lax.rsqrt(numpyro.sample("item_precision", gamma))
        obs_scale = jax.lax.rsqrt(numpyro.sample("obs_precision", gamma))
    factor_plate = numpyro.plate("factor", num_factors, dim=-2)
    user_plate = numpyro.plate("user", num_users, dim=-1)
    item_plate = numpyro.plate("item", num_items, dim=-1)
    with factor_plate, user_plate:
        user_factors = numpyro.sample("user_factors", dist.Normal(0.0, user_scale))
    with factor_plate, item_plate:
        item_factors = numpyro.sample("item_factors", dist.Normal(0.0, item_scale))
    if biases:
        with user_plate:
            user_bias = numpyro.sample("user_bias", dist.Normal(0.0, bias_scale))
        with item_plate:
            item_bias = numpyro.sample("item_bias", dist.Normal(0.0, bias_scale))
    with _rating_plate(num_ratings, subsample_size) as index:
        i, j = user[index], item[index]
        loc = offset + jnp.sum(user_factors[..., i] * item_factors[..., j], axis=-2)
        if biases:
            loc = loc + user_bias[..., i] + item_bias[..., j]
        observed = None if rating is None else rating[index]
        numpyro.sample("obs", dist.Normal(loc, obs_scale), obs=observed)


def _rating_plate(num_ratings: int, subsample_size: int | None) -> numpyro.plate:
    """Return the ``rating`` plate; minibatches are drawn *with* replacement.

    NumPyro's own subsampling draws without replacement by a shuffle of all
    ``num_ratings`` indices (on CPU), which makes every SVI step O(num_ratings).
    Indices drawn with replacement cost O(B) and keep the scaled likelihood
    unbiased; they are substituted as the plate's value, which NumPyro then scales
    by ``num_ratings / subsample_size`` as usual.
    """
    if subsample_size is None or subsample_size >= num_ratings:
        return numpyro.plate("rating", num_ratings)
    rng_key = numpyro.prng_key()
    if rng_key is None:  # no seed handler: NumPyro's plate raises its own error
        return numpyro.plate("rating", num_ratings, subsample_size=subsample_size)
    index = jax.random.randint(rng_key, (subsample_size,), 0, num_ratings)
    with handlers.substitute(data={"rating": index}):
        return numpyro.plate("rating", num_ratings, subsample_size=subsample_size)


_MODEL_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(model).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def model_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """Complete a ``data`` mapping of :func:`model` with the model's defaults.

    Parameters
    ----------
    data : mapping
        Keyword arguments of :func:`model` (the ``data`` given to ``fit``).

    Returns
    -------
    dict
        Every argument of :func:`model`, the given values overriding the defaults.

    Examples
    --------
    >>> from numpyro_pgm.models import matrix_factorization as mf
    >>> mf.model_settings({"num_factors": 3})["obs_scale"]
    1.0
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"data must be a mapping of the model's keyword arguments; got "
            f"{type(data).__name__}."
        )
    return {**_MODEL_DEFAULTS, **data}


# ---------------------------------------------------------------------------- guide


def mean_field_guide(
    user: ArrayLike,
    item: ArrayLike,
    rating: ArrayLike | None = None,
    *,
    num_users: int,
    num_items: int,
    num_factors: int,
    user_scale: float = 1.0,
    item_scale: float = 1.0,
    obs_scale: float = 1.0,
    biases: bool = False,
    bias_scale: float = 1.0,
    offset: float = 0.0,
    hyperprior: bool = False,
    precision_shape: float = 1.0,
    precision_rate: float = 1.0,
    subsample_size: int | None = None,
) -> None:
    r"""Fully factorised Gaussian guide with the model's signature.

    .. math::

        q = \prod_{k, i} \mathcal N(u_{ik}; m_{ik}, s_{ik}^2)
        \prod_{k, j} \mathcal N(v_{jk}; m'_{jk}, s'^2_{jk})
        \times [\text{biases}]\ \prod_i \mathcal N(b_i) \prod_j \mathcal N(c_j)
        \times [\text{hyperprior}]\ \prod_{\lambda} \mathrm{LogNormal}(\lambda),

    the mean-field family of the seed with diagonal covariances (the seed's CAVI
    keeps a full :math:`K \times K` covariance per user and item). It has no
    ``rating`` plate, so it works unchanged with ``subsample_size``. When the
    ratings are concrete arrays, the factor means (and the precisions) start at
    the spectral estimate of
    :func:`~numpyro_pgm.models.matrix_factorization_init.spectral_init`, which
    avoids the local optima a random start can fall into; otherwise at
    :math:`\mathcal N(0, 0.1^2)` draws (zero is a saddle point of the ELBO).
    Scales start at 0.1, biases at 0.

    Parameters
    ----------
    user, item, rating, num_users, num_items, num_factors, ...
        As in :func:`model`.

    References
    ----------
    .. [1] G. Louppe, seed ``004_cd8dd066ec9fb123.txt``, "Mean-field variational
       inference" and "Automatic differentiation variational inference".
    """
    start = _guide_start(
        user,
        item,
        rating,
        num_users=num_users,
        num_items=num_items,
        num_factors=num_factors,
        offset=offset,
        hyperprior=hyperprior,
    )
    positive = constraints.positive
    if hyperprior:
        for name in ("user_precision", "item_precision", "obs_precision"):
            loc = numpyro.param(
                f"{name}_loc",
                lambda rng_key, name=name: jnp.log(start(name, rng_key)),
            )
            scale = numpyro.param(
                f"{name}_scale", jnp.full((), 0.1), constraint=positive
            )
            numpyro.sample(name, dist.LogNormal(loc, scale))
    factor_plate = numpyro.plate("factor", num_factors, dim=-2)
    for side, size in (("user", num_users), ("item", num_items)):
        shape = (num_factors, size)
        with factor_plate, numpyro.plate(side, size, dim=-1):
            loc = numpyro.param(
                f"{side}_factors_loc",
                lambda rng_key, side=side: start(f"{side}_factors", rng_key),
            )
            scale = numpyro.param(
                f"{side}_factors_scale", jnp.full(shape, 0.1), constraint=positive
            )
            numpyro.sample(f"{side}_factors", dist.Normal(loc, scale))
        if biases:
            with numpyro.plate(side, size, dim=-1):
                loc = numpyro.param(f"{side}_bias_loc", jnp.zeros(size))
                scale = numpyro.param(
                    f"{side}_bias_scale", jnp.full(size, 0.1), constraint=positive
                )
                numpyro.sample(f"{side}_bias", dist.Normal(loc, scale))


def _guide_start(user, item, rating, **settings):
    """Return ``start(site, rng_key)``: spectral values, computed at most once."""
    shapes = {
        "user_factors": (settings["num_factors"], settings["num_users"]),
        "item_factors": (settings["num_factors"], settings["num_items"]),
    }
    concrete = rating is not None and all(_is_concrete(a) for a in (user, item, rating))
    cache: dict[str, Any] = {}

    def start(site: str, rng_key: Array) -> Array:
        if concrete and not cache:
            from .matrix_factorization_init import spectral_init

            cache.update(spectral_init(user, item, rating, **settings))
        if site in cache:
            return jnp.asarray(cache[site], dtype=jnp.result_type(float))
        if site in shapes:
            return 0.1 * jax.random.normal(rng_key, shapes[site])
        return jnp.ones(())

    return start


# ------------------------------------------------------------------------- simulate


def simulate(
    rng_key: Array,
    *,
    num_users: int,
    num_items: int,
    num_factors: int,
    num_ratings: int,
    user_factors: ArrayLike | None = None,
    item_factors: ArrayLike | None = None,
    **model_kwargs: Any,
) -> dict[str, Array]:
    r"""Draw observed entries, latents and ratings by ancestral sampling.

    The ``num_ratings`` observed cells :math:`(i, j)` are drawn uniformly without
    replacement from the :math:`N \times M` grid, then the latents from their prior
    (unless given) and :math:`R_{ij}` from :func:`model`.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    num_users, num_items, num_factors : int
        :math:`N`, :math:`M` and :math:`K`.
    num_ratings : int
        Number of observed entries, at most :math:`N M`.
    user_factors, item_factors : array_like, optional
        True factors, shaped ``(num_factors, num_users)`` and ``(num_factors,
        num_items)``; drawn from the prior when ``None``.
    **model_kwargs
        Other keyword arguments of :func:`model` (``biases``, ``obs_scale``,
        ``hyperprior``, ...).

    Returns
    -------
    dict of str to Array
        ``user``, ``item``, ``rating`` (num_ratings,) and every latent site of the
        model (``user_factors``, ``item_factors``, and the optional biases and
        precisions), keyed by site name.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import matrix_factorization as mf
    >>> sim = mf.simulate(jax.random.key(0), num_users=5, num_items=4,
    ...                   num_factors=2, num_ratings=12)
    >>> sorted(sim), sim["user_factors"].shape
    (['item', 'item_factors', 'rating', 'user', 'user_factors'], (2, 5))
    """
    _check_size("num_users", num_users, " (the number of users)", 100)
    _check_size("num_items", num_items, " (the number of items)", 100)
    _check_size(
        "num_ratings",
        num_ratings,
        f" and <= num_users * num_items = {num_users * num_items}",
        min(num_users * num_items, 1000),
    )
    if num_ratings > num_users * num_items:
        raise ValueError(
            f"num_ratings must be <= num_users * num_items = {num_users * num_items} "
            f"(each cell is observed at most once); got {num_ratings}."
        )
    unknown = set(model_kwargs) - set(_MODEL_DEFAULTS) | (
        set(model_kwargs) & {"rating", "subsample_size"}
    )
    if unknown:
        raise TypeError(
            f"simulate got unexpected keyword argument(s) {sorted(unknown)}; it "
            f"takes the model's hyperparameters {sorted(_MODEL_DEFAULTS)} except "
            "rating and subsample_size."
        )
    cell_key, model_key = jax.random.split(rng_key)
    cells = jax.random.choice(
        cell_key, num_users * num_items, (num_ratings,), replace=False
    )
    user, item = cells // num_items, cells % num_items
    fixed = {}
    for name, value, size in (
        ("user_factors", user_factors, num_users),
        ("item_factors", item_factors, num_items),
    ):
        if value is not None:
            fixed[name] = jnp.asarray(value, dtype=jnp.result_type(float))
            if fixed[name].shape != (num_factors, size):
                raise ValueError(
                    f"{name} must have shape (num_factors, {size}) = "
                    f"{(num_factors, size)} (factor-major); got {fixed[name].shape}. "
                    "Transpose a (size, num_factors) matrix with `.T`."
                )
    conditioned = numpyro.handlers.condition(model, data=fixed)
    seeded = numpyro.handlers.seed(conditioned, rng_seed=model_key)
    trace = numpyro.handlers.trace(seeded).get_trace(
        user,
        item,
        num_users=num_users,
        num_items=num_items,
        num_factors=num_factors,
        **model_kwargs,
    )
    out = {"user": user, "item": item, "rating": trace["obs"]["value"]}
    out.update(
        (name, site["value"])
        for name, site in trace.items()
        if site["type"] == "sample" and name != "obs"
    )
    return out
