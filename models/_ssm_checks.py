"""Private input checks shared by the state-space modules (kalman, structural, models).

Every check runs on concrete values only: inside ``jit``, ``vmap`` or a NumPyro
trace the parameters are tracers and the checks are skipped (their shapes are still
checked, since shapes are static).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

Array = jax.Array

MSG_SHAPE = (
    "{name} must have shape {expected} for a model with {m} state(s) and {d} "
    "observation(s) per time step; got shape {got}. Build the model with "
    "local_level/local_linear_trend/seasonal/trigonometric_seasonal/combine, or fix "
    "the array's shape; for a batch of parameter draws, map over it with jax.vmap."
)
MSG_COVARIANCE = (
    "{name} must be a symmetric positive semi-definite covariance matrix; got "
    "{problem}. Build it as `L @ L.T` (or from variances with jnp.diag), or use the "
    "builders local_level/local_linear_trend/seasonal/combine."
)
MSG_Y_NDIM = (
    "y must have shape (num_timesteps, {d}){univariate}; got shape {got}. Reshape it, "
    "e.g. `y.reshape(-1, {d})`, or check that the model has {d} observation(s) per "
    "time step."
)
MSG_Y_EMPTY = "y must have at least one time step; got shape {got}."
MSG_Y_INF = (
    "y must be finite or NaN (NaN marks a missing value); got {count} infinite "
    "value(s), first at index {index}. Replace them with NaN to skip those steps."
)
MSG_Y_ALL_MISSING = (
    "y has no observed value: all {count} entries are NaN (NaN marks a missing "
    "value), so the likelihood is constant and the data say nothing. Pass a series "
    "with at least one observation; to draw from the model without data use "
    "simulate(...) or y=None with num_timesteps."
)
MSG_NEGATIVE = (
    "{name} must be a non-negative variance; got {value}. Pass a variance (a squared "
    "standard deviation), e.g. `{name}=scale**2`."
)

# Relative tolerance of the symmetry and eigenvalue checks: float32 rounding of a
# covariance built as L @ L.T, with room to spare.
_TOLERANCE = 1e-5


def concrete(x) -> bool:
    """Return whether ``x`` holds values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def variance(name: str, value: ArrayLike) -> Array:
    """Return ``value`` as an array after checking that it is non-negative."""
    if concrete(value) and np.any(np.asarray(value) < 0):
        raise ValueError(MSG_NEGATIVE.format(name=name, value=value))
    return jnp.asarray(value)


def _covariance_problem(matrix: np.ndarray) -> str | None:
    """Describe why ``matrix`` is not a covariance, or return ``None``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        return "non-finite entries"
    scale = max(np.abs(matrix).max(), np.finfo(np.float64).tiny)
    asymmetry = np.abs(matrix - matrix.T).max()
    if asymmetry > _TOLERANCE * scale:
        return f"an asymmetric matrix (max |A - A.T| = {asymmetry:.3g})"
    smallest = np.linalg.eigvalsh(0.5 * (matrix + matrix.T)).min()
    if smallest < -_TOLERANCE * scale:
        return f"a matrix with a negative eigenvalue ({smallest:.4g})"
    return None


def check_ssm(ssm) -> tuple[int, int]:
    """Check the shapes and covariances of a ``LinearGaussianSSM``; return (m, d)."""
    m = np.shape(ssm.transition_matrix)[-1] if np.ndim(ssm.transition_matrix) else 0
    d = np.shape(ssm.observation_matrix)[0] if np.ndim(ssm.observation_matrix) else 0
    for name, expected in [
        ("transition_matrix", (m, m)),
        ("observation_matrix", (d, m)),
        ("transition_cov", (m, m)),
        ("observation_cov", (d, d)),
        ("initial_mean", (m,)),
        ("initial_cov", (m, m)),
    ]:
        got = np.shape(getattr(ssm, name))
        if got != expected:
            raise ValueError(
                MSG_SHAPE.format(name=name, expected=expected, m=m, d=d, got=got)
            )
    for name in ("transition_cov", "observation_cov", "initial_cov"):
        value = getattr(ssm, name)
        if concrete(value):
            problem = _covariance_problem(value)
            if problem is not None:
                raise ValueError(MSG_COVARIANCE.format(name=name, problem=problem))
    return m, d


def check_positive_definite(name: str, matrix: ArrayLike, why: str) -> None:
    """Raise if a concrete ``matrix`` has no Cholesky factor."""
    if not concrete(matrix):
        return
    smallest = np.linalg.eigvalsh(np.asarray(matrix, dtype=np.float64)).min()
    if smallest <= 0:
        raise ValueError(
            f"{name} must be positive definite {why}; got smallest eigenvalue "
            f"{smallest:.4g}. Add a small positive variance to its diagonal."
        )


def check_observations(y: ArrayLike, d: int) -> Array:
    """Return ``y`` as ``(T, d)``; ``(T,)`` is accepted when ``d == 1``."""
    shape = np.shape(y)
    if len(shape) == 1 and d == 1:
        y = jnp.reshape(y, (-1, 1))
    elif len(shape) != 2 or shape[1] != d:
        univariate = " or (num_timesteps,)" if d == 1 else ""
        raise ValueError(MSG_Y_NDIM.format(d=d, univariate=univariate, got=shape))
    if shape[0] == 0:
        raise ValueError(MSG_Y_EMPTY.format(got=shape))
    if concrete(y):
        values = np.asarray(y)
        infinite = np.isinf(values)
        if infinite.any():
            index = tuple(int(i[0]) for i in np.nonzero(infinite))
            raise ValueError(MSG_Y_INF.format(count=infinite.sum(), index=index))
        if np.isnan(values).all():
            raise ValueError(MSG_Y_ALL_MISSING.format(count=values.size))
    return jnp.asarray(y)


def checked(ssm, y: ArrayLike) -> Array:
    """Check a model and its observations together; return ``y`` as ``(T, d)``."""
    return check_observations(y, check_ssm(ssm)[1])
