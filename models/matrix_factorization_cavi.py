r"""Coordinate ascent variational inference for probabilistic matrix factorisation.

The seed's algorithm (``004_cd8dd066ec9fb123.txt``, "Example: Matrix
factorization") for :func:`numpyro_pgm.models.matrix_factorization.model`, with
the mean-field family :math:`q = \prod_i q(u_i) \prod_j q(v_j)`,
:math:`q(u_i) = \mathcal N(\mu_{u_i}, \Sigma_{u_i})`, and the updates

.. math::

    \Sigma_{u_i} &= \Bigl[\frac{1}{\sigma_u^2} I + \frac{1}{\sigma^2}
    \sum_{j \in \mathcal O_i} (\mu_{v_j} \mu_{v_j}^\top + \Sigma_{v_j})\Bigr]^{-1},
    \qquad
    \mu_{u_i} = \Sigma_{u_i} \Bigl[\frac{1}{\sigma^2} \sum_{j \in \mathcal O_i}
    R_{ij} \mu_{v_j}\Bigr], \\
    \Sigma_{v_j} &= \Bigl[\frac{1}{\sigma_v^2} I + \frac{1}{\sigma^2}
    \sum_{i \in \mathcal O_j} (\mu_{u_i} \mu_{u_i}^\top + \Sigma_{u_i})\Bigr]^{-1},
    \qquad
    \mu_{v_j} = \Sigma_{v_j} \Bigl[\frac{1}{\sigma^2} \sum_{i \in \mathcal O_j}
    R_{ij} \mu_{u_i}\Bigr].

All users are updated at once, then all items: the sums over
:math:`\mathcal O_i` are ``jax.ops.segment_sum`` over the observed entries, so a
sweep costs :math:`O(|\mathcal O| K^2 + (N + M) K^3)`.

Two extensions keep every step an exact coordinate maximisation, so the ELBO
recorded after each sweep never decreases:

* ``biases=True``: the factors :math:`q(u_i, b_i)` are Gaussian jointly in
  :math:`(u_i, b_i)`; the same update holds with :math:`v_j` replaced by the
  design vector :math:`(v_j, 1)` and :math:`R_{ij}` by :math:`R_{ij} -
  \text{offset} - c_j` in expectation.
* ``hyperprior=True``: :math:`q(\lambda_u) = \mathrm{Gamma}(a_0 + NK/2, b_0 +
  \frac12 \sum_i \mathbb E\|u_i\|^2)`, likewise :math:`\lambda_v`, and
  :math:`q(\tau) = \mathrm{Gamma}(a_0 + |\mathcal O|/2, b_0 + \frac12 \sum
  \mathbb E(R_{ij} - \hat R_{ij})^2)`; :math:`1/\sigma_u^2` and :math:`1/\sigma^2`
  above become :math:`\mathbb E_q[\lambda_u]` and :math:`\mathbb E_q[\tau]`.

References
----------
.. [1] G. Louppe, *Foundations of Data Science*, Lecture 8, seed
   ``004_cd8dd066ec9fb123.txt``, "Coordinate ascent variational inference (CAVI)"
   and "Example: Matrix factorization".
.. [2] Y. J. Lim and Y. W. Teh, "Variational Bayesian approach to movie rating
   prediction", KDD Cup and Workshop (2007).
.. [3] D. M. Blei, A. Kucukelbir and J. D. McAuliffe, "Variational inference: a
   review for statisticians", JASA 112 (2017).
"""

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve
from jax.scipy.special import digamma, gammaln
from jax.typing import ArrayLike

from .matrix_factorization import _MODEL_DEFAULTS
from .matrix_factorization_checks import check_ratings
from .matrix_factorization_gibbs import (
    _design_moments,
    _gaussian,
    _natural_parameters,
    _own_moments,
    _prior_precision,
    _sum_over_ratings,
)
from .matrix_factorization_init import spectral_init

__all__ = ["CAVIResult", "cavi"]

Array = jax.Array

_SETTINGS = (
    "user_scale",
    "item_scale",
    "obs_scale",
    "biases",
    "bias_scale",
    "offset",
    "hyperprior",
    "precision_shape",
    "precision_rate",
)


class CAVIResult(NamedTuple):
    r"""Output of :func:`cavi`: the mean-field posterior and the ELBO per sweep.

    Attributes
    ----------
    user_mean, user_cov : Array of shape (num_users, F) and (num_users, F, F)
        :math:`q(u_i) = \mathcal N(\mu_{u_i}, \Sigma_{u_i})` per user (row-major,
        one row per user), with :math:`F = K`, or :math:`F = K + 1` and the bias
        :math:`b_i` last when ``biases=True``.
    item_mean, item_cov : Array of shape (num_items, F) and (num_items, F, F)
        The same for the items.
    precision_shape, precision_rate : Array of shape (3,)
        :math:`q(\lambda) = \mathrm{Gamma}(\text{shape}, \text{rate})` for
        ``user_precision``, ``item_precision``, ``obs_precision`` (NaN unless
        ``hyperprior=True``).
    elbo : numpy.ndarray of shape (num_iterations + 1,)
        The ELBO at the initial state and after every sweep; non-decreasing.
    converged : bool
        Whether the ELBO changed by less than ``tol * num_ratings`` in a sweep.
    num_iterations : int
        Number of sweeps run.
    settings : dict
        Sizes and hyperparameters of the model that was fitted.
    """

    user_mean: Array
    user_cov: Array
    item_mean: Array
    item_cov: Array
    precision_shape: Array
    precision_rate: Array
    elbo: np.ndarray
    converged: bool
    num_iterations: int
    settings: dict[str, Any]


class _State(NamedTuple):
    user_mean: Array
    user_cov: Array
    item_mean: Array
    item_cov: Array
    shape: Array
    rate: Array


def _precision_moments(state: _State, static: dict) -> tuple[Array, Array]:
    """Return E[lambda] and E[log lambda] of the three precisions, shape (3,)."""
    if static["hyperprior"]:
        return state.shape / state.rate, digamma(state.shape) - jnp.log(state.rate)
    fixed = jnp.array(
        [static[n] ** -2.0 for n in ("user_scale", "item_scale", "obs_scale")]
    )
    return fixed, jnp.log(fixed)


def _expected_squared_error(state, user, item, residual, biases, chunk):
    r""":math:`\sum_n \mathbb E_q[(r_n - a_{u_n}^\top x_{v_n})^2]`."""
    own_mean, own_second = _own_moments(state.user_mean, state.user_cov, biases)
    design_mean, design_second = _design_moments(
        state.item_mean, state.item_cov, biases
    )

    def statistics(user_rows, item_rows, residual_rows, weight):
        cross = jnp.sum(own_mean[user_rows] * design_mean[item_rows], -1)
        quadratic = jnp.sum(own_second[user_rows] * design_second[item_rows], (-2, -1))
        return jnp.sum(
            weight * (residual_rows**2 - 2 * residual_rows * cross + quadratic)
        )

    return _sum_over_ratings(statistics, (user, item, residual), chunk)


def _side_terms(mean, cov, factor_precision, log_factor_precision, static):
    """E log p(factors, bias) + entropy of q for one side."""
    num, num_free = mean.shape
    num_factors = static["num_factors"]
    squares = mean**2 + jnp.diagonal(cov, axis1=-2, axis2=-1)
    prior = 0.5 * num * num_factors * (log_factor_precision - math.log(2 * math.pi))
    prior -= 0.5 * factor_precision * jnp.sum(squares[:, :num_factors])
    if static["biases"]:
        bias_var = static["bias_scale"] ** 2
        prior -= 0.5 * num * math.log(2 * math.pi * bias_var)
        prior -= 0.5 * jnp.sum(squares[:, num_factors]) / bias_var
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(cov), 0, -2, -1)))
    entropy = 0.5 * (num * num_free * (1 + math.log(2 * math.pi)) + log_det)
    return prior + entropy


def _elbo(state, user, item, residual, static, chunk):
    precision, log_precision = _precision_moments(state, static)
    squared_error = _expected_squared_error(
        state, user, item, residual, static["biases"], chunk
    )
    num = residual.shape[0]
    value = 0.5 * num * (log_precision[2] - math.log(2 * math.pi))
    value -= 0.5 * precision[2] * squared_error
    value += _side_terms(
        state.user_mean, state.user_cov, precision[0], log_precision[0], static
    )
    value += _side_terms(
        state.item_mean, state.item_cov, precision[1], log_precision[1], static
    )
    if static["hyperprior"]:
        a0, b0 = static["precision_shape"], static["precision_rate"]
        shape, rate = state.shape, state.rate
        log_prior = (
            a0 * math.log(b0)
            - math.lgamma(a0)
            + (a0 - 1) * log_precision
            - b0 * precision
        )
        entropy = shape - jnp.log(rate) + gammaln(shape) + (1 - shape) * digamma(shape)
        value += jnp.sum(log_prior + entropy)
    return value, squared_error


def _update_side(state, side, user, item, residual, static, chunk):
    precision, _ = _precision_moments(state, static)
    biases = static["biases"]
    if side == "user":
        other_mean, other_cov, own, other = state.item_mean, state.item_cov, user, item
    else:
        other_mean, other_cov, own, other = state.user_mean, state.user_cov, item, user
    design_mean, design_second = _design_moments(other_mean, other_cov, biases)
    natural_precision, shift = _natural_parameters(
        own,
        other,
        residual,
        design_mean,
        design_second,
        num_own=static[f"num_{side}s"],
        prior_precision=_prior_precision(static, precision[0 if side == "user" else 1]),
        noise_precision=precision[2],
        chunk=chunk,
    )
    cholesky, mean = _gaussian(natural_precision, shift)
    eye = jnp.broadcast_to(jnp.eye(mean.shape[-1]), natural_precision.shape)
    cov = cho_solve((cholesky, True), eye)
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    return state._replace(**{f"{side}_mean": mean, f"{side}_cov": cov})


def _update_precisions(state, squared_error, num_ratings, static):
    k = static["num_factors"]
    sums = []
    for mean, cov in (
        (state.user_mean, state.user_cov),
        (state.item_mean, state.item_cov),
    ):
        squares = mean[:, :k] ** 2 + jnp.diagonal(cov, axis1=-2, axis2=-1)[:, :k]
        sums.append(jnp.sum(squares))
    counts = jnp.array(
        [state.user_mean.shape[0] * k, state.item_mean.shape[0] * k, num_ratings],
        dtype=state.rate.dtype,
    )
    sums = jnp.stack([*sums, squared_error])
    return state._replace(
        shape=static["precision_shape"] + counts / 2,
        rate=static["precision_rate"] + sums / 2,
    )


@partial(jax.jit, static_argnames=("static_items", "num_iterations", "chunk"))
def _run(state, user, item, residual, tol, *, static_items, num_iterations, chunk):
    static = dict(static_items)
    num_ratings = residual.shape[0]

    def sweep(state):
        state = _update_side(state, "user", user, item, residual, static, chunk)
        state = _update_side(state, "item", user, item, residual, static, chunk)
        value, squared_error = _elbo(state, user, item, residual, static, chunk)
        if static["hyperprior"]:
            state = _update_precisions(state, squared_error, num_ratings, static)
            value = _elbo(state, user, item, residual, static, chunk)[0]
        return state, value

    history = jnp.full(num_iterations + 1, jnp.nan, dtype=residual.dtype)
    history = history.at[0].set(_elbo(state, user, item, residual, static, chunk)[0])

    def keep_going(carry):
        iteration, _, history = carry
        change = jnp.abs(history[iteration] - history[jnp.maximum(iteration - 1, 0)])
        converged = (iteration > 0) & (change < tol * num_ratings)
        return (
            (iteration < num_iterations) & ~converged & jnp.isfinite(history[iteration])
        )

    def body(carry):
        iteration, state, history = carry
        state, value = sweep(state)
        return iteration + 1, state, history.at[iteration + 1].set(value)

    return jax.lax.while_loop(keep_going, body, (0, state, history))


def _initial_state(rng_key, residual, static, start=None) -> _State:
    num_factors, biases = static["num_factors"], static["biases"]
    num_free = num_factors + int(biases)
    if static["hyperprior"]:
        a0, b0 = static["precision_shape"], static["precision_rate"]
        scales = (math.sqrt(b0 / a0),) * 2
    else:
        scales = (static["user_scale"], static["item_scale"])
    means, covs = [], []
    keys = jax.random.split(rng_key, 2)
    for key, side, scale in zip(keys, ("user", "item"), scales, strict=True):
        num = static[f"num_{side}s"]
        if start is None:
            mean = scale * jax.random.normal(key, (num, num_free), residual.dtype)
        else:
            mean = jnp.zeros((num, num_free), residual.dtype)
            mean = mean.at[:, :num_factors].set(start[f"{side}_factors"].T)
        if biases:
            mean = mean.at[:, num_factors].set(0.0)
        means.append(mean)
        covs.append(
            jnp.broadcast_to(
                (0.1 * scale) ** 2 * jnp.eye(num_free), (num, num_free, num_free)
            )
        )
    shape = jnp.full(3, jnp.nan, residual.dtype)
    rate = jnp.full(3, jnp.nan, residual.dtype)
    if static["hyperprior"]:
        a0, b0 = static["precision_shape"], static["precision_rate"]
        counts = jnp.array(
            [
                static["num_users"] * num_factors,
                static["num_items"] * num_factors,
                residual.shape[0],
            ],
            residual.dtype,
        )
        shape = a0 + counts / 2
        prior_mean = jnp.array(
            [a0 / b0, a0 / b0, 1.0 / jnp.maximum(jnp.var(residual), 1e-6)]
        )
        rate = shape / prior_mean
    return _State(means[0], covs[0], means[1], covs[1], shape, rate)


def cavi(
    rng_key: Array,
    user: ArrayLike,
    item: ArrayLike,
    rating: ArrayLike,
    *,
    num_users: int,
    num_items: int,
    num_factors: int,
    num_iterations: int = 200,
    tol: float = 1e-6,
    init: str = "spectral",
    chunk_size: int = 16_384,
    **model_kwargs: Any,
) -> CAVIResult:
    r"""Fit the mean-field posterior of the matrix factorisation model by CAVI.

    Each sweep updates every :math:`q(u_i)` at once, then every :math:`q(v_j)`
    (seed ``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization"), then,
    with ``hyperprior=True``, the Gamma factors of the precisions. Bias means
    start at zero, factor means at the spectral estimate of
    :func:`~numpyro_pgm.models.matrix_factorization_init.spectral_init` or, with
    ``init="random"``, at draws from the prior (the seed's random
    initialisation, which ends in a worse local optimum in a sizeable fraction
    of runs on small problems).

    Parameters
    ----------
    rng_key : Array
        PRNG key for the random initialisation.
    user, item, rating : array_like of shape (num_ratings,)
        The observed entries in coordinate form, as in
        :func:`numpyro_pgm.models.matrix_factorization.model`.
    num_users, num_items, num_factors : int
        :math:`N`, :math:`M` and :math:`K`.
    num_iterations : int
        Maximum number of sweeps.
    tol : float
        Stop when the ELBO changes by less than ``tol * num_ratings`` in a sweep.
    init : {"spectral", "random"}
        Start of the factor means (``rng_key`` is used only by ``"random"``).
    chunk_size : int
        Ratings per block of the segment sums (bounds memory at ``chunk_size``
        :math:`D \times D` moments, :math:`D \le K + 2`).
    **model_kwargs
        Hyperparameters of the model: ``user_scale``, ``item_scale``,
        ``obs_scale``, ``biases``, ``bias_scale``, ``offset``, ``hyperprior``,
        ``precision_shape``, ``precision_rate``.

    Returns
    -------
    CAVIResult
        The variational factors and the ELBO history (non-decreasing).

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import matrix_factorization as mf
    >>> from numpyro_pgm.models.matrix_factorization_cavi import cavi
    >>> sim = mf.simulate(jax.random.key(0), num_users=20, num_items=15,
    ...                   num_factors=2, num_ratings=150)
    >>> fit = cavi(jax.random.key(1), sim["user"], sim["item"], sim["rating"],
    ...            num_users=20, num_items=15, num_factors=2)
    >>> fit.user_mean.shape, bool((fit.elbo[1:] >= fit.elbo[:-1]).all())
    ((20, 2), True)

    References
    ----------
    .. [1] G. Louppe, seed ``004_cd8dd066ec9fb123.txt``, "Example: Matrix
       factorization".
    """
    unknown = sorted(set(model_kwargs) - set(_SETTINGS))
    if unknown:
        raise TypeError(
            f"cavi got unknown argument(s) {unknown}; it takes the model's "
            f"hyperparameters {list(_SETTINGS)}"
            + (
                " (CAVI always uses every rating: drop subsample_size)."
                if "subsample_size" in unknown
                else "."
            )
        )
    if rating is None:
        raise ValueError("rating is None; cavi needs the observed ratings.")
    user, item, rating = check_ratings(
        user,
        item,
        rating,
        num_users=num_users,
        num_items=num_items,
        num_factors=num_factors,
    )
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, int):
        raise ValueError(f"num_iterations must be an int >= 1; got {num_iterations!r}.")
    if num_iterations < 1:
        raise ValueError(f"num_iterations must be an int >= 1; got {num_iterations!r}.")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0; got {tol!r}. Pass e.g. tol=1e-6.")
    settings = {
        name: model_kwargs.get(name, _MODEL_DEFAULTS[name]) for name in _SETTINGS
    }
    for name in _SETTINGS:
        if name not in ("biases", "hyperprior", "offset"):
            value = settings[name]
            if not (np.ndim(value) == 0 and np.isfinite(value) and value > 0):
                raise ValueError(
                    f"{name} must be a finite positive number; got {value!r}."
                )
    settings = {
        name: bool(v) if name in ("biases", "hyperprior") else float(v)
        for name, v in settings.items()
    }
    settings.update(num_users=num_users, num_items=num_items, num_factors=num_factors)
    residual = rating - settings["offset"]
    if init not in ("spectral", "random"):
        raise ValueError(
            f"init must be 'spectral' or 'random'; got {init!r}. 'spectral' starts "
            "from a truncated SVD and avoids most local optima."
        )
    start = None
    if init == "spectral":
        start = spectral_init(
            user,
            item,
            rating,
            num_users=num_users,
            num_items=num_items,
            num_factors=num_factors,
            offset=settings["offset"],
        )
        start = {k: jnp.asarray(v, residual.dtype) for k, v in start.items()}
    state = _initial_state(rng_key, residual, settings, start)
    iterations, state, history = _run(
        state,
        user,
        item,
        residual,
        jnp.asarray(tol, residual.dtype),
        static_items=tuple(sorted(settings.items())),
        num_iterations=num_iterations,
        chunk=int(chunk_size),
    )
    iterations = int(iterations)
    history = np.asarray(history)[: iterations + 1]
    converged = iterations < num_iterations or (
        iterations > 0 and abs(history[-1] - history[-2]) < tol * int(residual.shape[0])
    )
    return CAVIResult(
        user_mean=state.user_mean,
        user_cov=state.user_cov,
        item_mean=state.item_mean,
        item_cov=state.item_cov,
        precision_shape=state.shape,
        precision_rate=state.rate,
        elbo=history,
        converged=bool(converged and np.isfinite(history[-1])),
        num_iterations=iterations,
        settings=settings,
    )
