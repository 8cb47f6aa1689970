"""Private helpers shared by the GMM modules: validation, ordering, densities."""

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.transforms import (
    OrderedTransform,
    ParameterFreeTransform,
    biject_to,
)

Array = jax.Array

MSG_POSITIVE = (
    "{name} must be positive in every entry; got {value!r}. Pass a positive value, "
    "e.g. {name}={example}."
)
MSG_SHAPE = (
    "{name} must be a scalar or have shape {allowed}; got shape {shape}. Pass one "
    "value per {per}, or a scalar to use the same value for all."
)
MSG_X_NDIM = (
    "x must be a 2-D array shaped (num_points, dim); got shape {shape}. Reshape 1-D "
    "data with x[:, None]."
)
MSG_X_FINITE = (
    "x must be finite; got {count} NaN or inf entries (first in row {row}). Drop or "
    "impute those rows before fitting."
)
MSG_NUM_COMPONENTS = (
    "num_components must be an integer between 1 and num_points ({num_points}); got "
    "{value!r}. Use fewer components or more data points."
)
MSG_SIZE = "{name} must be a positive integer{context}; got {value!r}. {fix}"
MSG_COVARIANCE_PRIOR = (
    "covariance_prior must be 'lkj' or 'wishart'; got {value!r}. Use 'wishart' for a "
    "closed-form Gibbs update, 'lkj' otherwise."
)
MSG_NO_CONJUGATE = "{what} has no closed-form full conditional under {setting}. {fix}"


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_positive(name: str, value: Any, example: str) -> None:
    if _is_concrete(value) and not np.all(np.asarray(value) > 0):
        raise ValueError(MSG_POSITIVE.format(name=name, value=value, example=example))


def _broadcast(name: str, value: Any, size: int, per: str) -> Array:
    value = jnp.asarray(value, dtype=jnp.result_type(float))
    if value.shape not in ((), (size,)):
        raise ValueError(
            MSG_SHAPE.format(name=name, allowed=(size,), shape=value.shape, per=per)
        )
    return jnp.broadcast_to(value, (size,))


def _check_sizes(
    x: ArrayLike | None, num_components: Any, num_points: Any, dim: Any
) -> tuple[Array | None, int, int]:
    """Validate ``x`` and the sizes; return ``(x, num_points, dim)``.

    ``num_components=None`` skips the check of the number of components.
    """
    if x is not None:
        x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(MSG_X_NDIM.format(shape=x.shape))
        if _is_concrete(x):
            bad = ~np.isfinite(np.asarray(x))
            if bad.any():
                row = int(np.argwhere(bad)[0, 0])
                raise ValueError(MSG_X_FINITE.format(count=int(bad.sum()), row=row))
        for name, given, actual in (
            ("num_points", num_points, x.shape[0]),
            ("dim", dim, x.shape[1]),
        ):
            if given is not None and given != actual:
                raise ValueError(
                    MSG_SIZE.format(
                        name=name,
                        context=f" equal to x.shape ({actual})",
                        value=given,
                        fix=f"Leave {name}=None with x given.",
                    )
                )
        num_points, dim = x.shape
    for name, value in (("num_points", num_points), ("dim", dim)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(
                MSG_SIZE.format(
                    name=name,
                    context=" when x is None" if x is None else " (from x.shape)",
                    value=value,
                    fix="Pass the size, or pass x." if x is None else "Pass data.",
                )
            )
    if num_components is not None and (
        not isinstance(num_components, int | np.integer)
        or not 1 <= num_components <= num_points
    ):
        raise ValueError(
            MSG_NUM_COMPONENTS.format(num_points=num_points, value=num_components)
        )
    return x, int(num_points), int(dim)


def _hyperparameters(settings: Mapping[str, Any], num_components: int, dim: int):
    """Return ``(concentration (K,), prior_mean (d,), prior_scale (d,), obs_cov)``."""
    for name, example in (
        ("concentration", "1.0"),
        ("prior_scale", "10.0"),
        ("obs_scale", "1.0"),
        ("obs_scale_prior", "1.0"),
        ("lkj_concentration", "1.0"),
    ):
        _check_positive(name, settings[name], example)
    if settings["covariance_prior"] not in ("lkj", "wishart"):
        raise ValueError(
            MSG_COVARIANCE_PRIOR.format(value=settings["covariance_prior"])
        )
    concentration = _broadcast(
        "concentration", settings["concentration"], num_components, "component"
    )
    prior_mean = _broadcast("prior_mean", settings["prior_mean"], dim, "dimension")
    prior_scale = _broadcast("prior_scale", settings["prior_scale"], dim, "dimension")
    if settings["obs_cov"] is None:
        obs_scale = _broadcast("obs_scale", settings["obs_scale"], dim, "dimension")
        obs_cov = jnp.diag(obs_scale**2)
    else:
        obs_cov = jnp.asarray(settings["obs_cov"], dtype=prior_mean.dtype)
        if obs_cov.shape != (dim, dim):
            raise ValueError(
                f"obs_cov must have shape (dim, dim) = {(dim, dim)}; got shape "
                f"{obs_cov.shape}. Pass the known noise covariance, or obs_scale."
            )
        if _is_concrete(obs_cov) and not np.all(
            np.linalg.eigvalsh(np.asarray(obs_cov)) > 0
        ):
            raise ValueError(
                f"obs_cov must be symmetric positive definite; got {obs_cov!r}. "
                "Pass a valid covariance, e.g. obs_cov=jnp.eye(dim)."
            )
    return concentration, prior_mean, prior_scale, obs_cov


class _FirstCoordinateOrdered(constraints.ParameterFreeConstraint):
    """Matrices of shape (K, d) whose first column is strictly increasing."""

    event_dim = 2

    def __call__(self, x):
        first = x[..., 0]
        return jnp.all(first[..., 1:] > first[..., :-1], axis=-1)

    def feasible_like(self, prototype):
        ramp = jnp.arange(prototype.shape[-2], dtype=prototype.dtype)
        return jnp.zeros_like(prototype).at[..., 0].set(ramp)


_first_coordinate_ordered = _FirstCoordinateOrdered()


class _FirstCoordinateOrderedTransform(ParameterFreeTransform):
    """Map a real (K, d) matrix to one with an increasing first column."""

    domain = constraints.real_matrix
    codomain = _first_coordinate_ordered

    def __call__(self, x):
        return x.at[..., 0].set(OrderedTransform()(x[..., 0]))

    def _inverse(self, y):
        return y.at[..., 0].set(OrderedTransform()._inverse(y[..., 0]))

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        return jnp.sum(x[..., 1:, 0], axis=-1)


@biject_to.register(_FirstCoordinateOrdered)
def _transform_to_first_coordinate_ordered(constraint):
    return _FirstCoordinateOrderedTransform()


class _SortedNormal(dist.Distribution):
    r"""K iid :math:`\mathcal{N}(m_0, \mathrm{diag}(s_0^2))` rows sorted by column 0.

    The density on the ordered cone is :math:`K! \prod_k \mathcal{N}(\mu_k)`.
    """

    arg_constraints = {"loc": constraints.real_vector, "scale": constraints.positive}
    support = _first_coordinate_ordered
    pytree_data_fields = ("loc", "scale")
    pytree_aux_fields = ("num_components",)

    def __init__(self, loc, scale, num_components, *, validate_args=None):
        self.loc, self.scale, self.num_components = loc, scale, num_components
        super().__init__(
            batch_shape=(),
            event_shape=(num_components, jnp.shape(loc)[-1]),
            validate_args=validate_args,
        )

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.event_shape
        noise = jax.random.normal(key, shape)
        draws = self.loc[..., None, :] + self.scale[..., None, :] * noise
        order = jnp.argsort(draws[..., 0], axis=-1)
        return jnp.take_along_axis(draws, order[..., None], axis=-2)

    def log_prob(self, value):
        loc, scale = self.loc[..., None, :], self.scale[..., None, :]
        log_density = dist.Normal(loc, scale).log_prob(value)
        return math.lgamma(self.num_components + 1) + log_density.sum((-2, -1))


def _precision_to_scale_tril(precision: Array) -> Array:
    """Cholesky factor of the inverse of a batch of precision matrices."""
    eye = jnp.broadcast_to(jnp.eye(precision.shape[-1]), precision.shape)
    cov = cho_solve((jnp.linalg.cholesky(precision), True), eye)
    return jnp.linalg.cholesky(cov)


def _wishart_df(settings: Mapping[str, Any], dim: int) -> float:
    df = settings["wishart_df"]
    df = dim + 2.0 if df is None else df
    if _is_concrete(df) and not df > dim - 1:
        raise ValueError(
            f"wishart_df must exceed dim - 1 = {dim - 1}; got {df!r}. Leave it None "
            f"for the default dim + 2 = {dim + 2}."
        )
    return df


def _gaussian_log_density(x: Array, mean: Array, scale_tril: Array) -> Array:
    """``log N(x_n; mean_k, L_k L_k^T)`` shaped (N, K) for x (N, d), mean (K, d)."""
    diff = x[None, :, :] - mean[:, None, :]
    white = solve_triangular(scale_tril, jnp.swapaxes(diff, -1, -2), lower=True)
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), -1)
    log_density = -0.5 * jnp.sum(white**2, axis=-2) - half_log_det[:, None]
    return (log_density - 0.5 * x.shape[-1] * math.log(2 * math.pi)).T


def _log_responsibilities(x: Array, pi: Array, mu: Array, scale_tril: Array):
    log_joint = jnp.log(pi)[None, :] + _gaussian_log_density(x, mu, scale_tril)
    return log_joint - jax.nn.logsumexp(log_joint, axis=-1, keepdims=True)


def _allow_rank_promotion(cls: type) -> type:
    """Subclass ``cls`` so its methods run under ``jax_numpy_rank_promotion="allow"``.

    NumPyro's ``MultivariateNormal`` (under enumeration), ``LKJCholesky`` and
    ``Wishart`` broadcast arrays of different ranks implicitly; the promotion is
    intended there, so it is allowed locally while user code stays strict.
    """

    def wrap(method):
        def wrapped(self, *args, **kwargs):
            with jax.numpy_rank_promotion("allow"):
                return method(self, *args, **kwargs)

        return wrapped

    methods = ("__init__", "sample", "sample_with_intermediates", "log_prob")
    namespace = {name: wrap(getattr(cls, name)) for name in methods}
    return type(f"_{cls.__name__}", (cls,), namespace)


_MultivariateNormal = _allow_rank_promotion(dist.MultivariateNormal)
_LKJCholesky = _allow_rank_promotion(dist.LKJCholesky)
_Wishart = _allow_rank_promotion(dist.Wishart)


@jax.jit(static_argnums=2)
def _kmeans_plus_plus(rng_key: Array, x: Array, num_components: int) -> Array:
    """Seed ``num_components`` centres from the data with k-means++ weighting."""
    first_key, rest_key = jax.random.split(rng_key)
    first = x[jax.random.randint(first_key, (), 0, x.shape[0])]
    centres = jnp.broadcast_to(first, (num_components, x.shape[1]))

    def add_centre(centres, inputs):
        index, key = inputs
        sq_dist = jnp.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
        valid = jnp.arange(num_components)[None, :] < index
        nearest = jnp.min(jnp.where(valid, sq_dist, jnp.inf), axis=-1)
        choice = jax.random.categorical(key, jnp.log(nearest))
        return centres.at[index].set(x[choice]), None

    steps = (
        jnp.arange(1, num_components),
        jax.random.split(rest_key, num_components - 1),
    )
    centres, _ = jax.lax.scan(add_centre, centres, steps)
    return centres


def _iterate(step, state, objective, num_points: int, num_iterations: int, tol: float):
    """Run ``state, objective = step(state)`` until converged; keep the history."""
    history = jnp.full(num_iterations + 1, jnp.nan, dtype=objective.dtype)
    history = history.at[0].set(objective)

    def keep_going(carry):
        iteration, _, history = carry
        change = jnp.abs(history[iteration] - history[jnp.maximum(iteration - 1, 0)])
        converged = (iteration > 0) & (change < tol * num_points)
        finite = (iteration == 0) | jnp.isfinite(history[iteration])
        return (iteration < num_iterations) & ~converged & finite

    def body(carry):
        iteration, state, history = carry
        state, objective = step(state)
        return iteration + 1, state, history.at[iteration + 1].set(objective)

    return jax.lax.while_loop(keep_going, body, (0, state, history))


def _check_iterations(num_iterations: Any, tol: Any) -> None:
    if not isinstance(num_iterations, int) or num_iterations < 1:
        raise ValueError(
            f"num_iterations must be a positive integer; got {num_iterations!r}."
        )
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0; got {tol!r}. Pass e.g. tol=1e-6.")
