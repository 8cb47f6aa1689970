r"""The seed's Newton iteration for the Laplace approximation of logistic regression.

Seed ``003_02afaf35b30b64a9.txt``, section 3.3 and Example 3.4 (eqs. (3.4)-(3.5)),
in :math:`d + 1` dimensions (see :mod:`numpyro_pgm.models.logistic` for the model
and the gradient and Hessian formulas). Re-exported by
:mod:`numpyro_pgm.models.logistic`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve
from jax.typing import ArrayLike

from ._logistic_checks import _validate

__all__ = [
    "LaplaceFit",
    "laplace_newton",
    "log_posterior",
    "log_posterior_gradient",
    "log_posterior_hessian",
]

Array = jax.Array


# ------------------------------------------------------------------ Newton-Laplace


class LaplaceFit(NamedTuple):
    r"""The Laplace approximation :math:`\mathcal N(\hat\theta, H^{-1})`.

    Parameters are ordered :math:`\theta = (b, w_1, \dots, w_d)`.

    Attributes
    ----------
    mode : jax.Array of shape (num_features + 1,)
        The posterior mode :math:`\hat\theta`.
    precision : jax.Array of shape (num_features + 1, num_features + 1)
        :math:`H`, the negative Hessian of the log posterior at the mode.
    covariance : jax.Array of shape (num_features + 1, num_features + 1)
        :math:`H^{-1}`, the covariance of the Gaussian approximation.
    num_iterations : int
        Newton steps taken.
    log_evidence : float
        The Laplace estimate :math:`\log p(\hat\theta, y \mid X) + \frac{d+1}{2}
        \log 2\pi - \frac12 \log\det H` of :math:`\log p(y \mid X)`.
    converged : bool
        Whether the Newton decrement fell below the tolerance.
    """

    mode: Array
    precision: Array
    covariance: Array
    num_iterations: int
    log_evidence: float
    converged: bool

    @property
    def b(self) -> Array:
        """The intercept at the mode."""
        return self.mode[0]

    @property
    def w(self) -> Array:
        """The weights at the mode, shape (num_features,)."""
        return self.mode[1:]

    def sample(self, rng_key: Array, num_samples: int = 1000) -> dict[str, Array]:
        """Draw from the Gaussian approximation.

        Parameters
        ----------
        rng_key : jax.Array
            PRNG key.
        num_samples : int
            Number of draws.

        Returns
        -------
        dict of str to jax.Array
            ``b`` shaped (1, num_samples) and ``w`` shaped (1, num_samples,
            num_features): one chain, as in :attr:`InferenceResult.samples`.
        """
        draws = jax.random.multivariate_normal(
            rng_key, self.mode, self.covariance, (num_samples,)
        )
        return {"b": draws[None, :, 0], "w": draws[None, :, 1:]}


def _design(X: ArrayLike) -> Array:
    X = jnp.asarray(X)
    return jnp.concatenate([jnp.ones((X.shape[0], 1), X.dtype), X], axis=1)


def _prior_precision(
    design: Array, prior_scale: float, intercept_scale: float
) -> Array:
    r"""Diagonal of :math:`\Lambda` for the columns of ``design`` (intercept first)."""
    num_features, dtype = design.shape[1] - 1, design.dtype
    variances = jnp.concatenate(
        [
            jnp.full((1,), intercept_scale**2, dtype),
            jnp.full((num_features,), prior_scale**2, dtype),
        ]
    )
    return 1.0 / variances


def _log_joint(theta, design, y, prior_precision):
    logits = design @ theta
    log_likelihood = jnp.sum(y * logits - jax.nn.softplus(logits))
    log_prior = 0.5 * jnp.sum(
        jnp.log(prior_precision / (2.0 * jnp.pi)) - prior_precision * theta**2
    )
    return log_likelihood + log_prior


def _gradient(theta, design, y, prior_precision):
    return design.T @ (y - jax.nn.sigmoid(design @ theta)) - prior_precision * theta


def _negative_hessian(theta, design, prior_precision):
    probabilities = jax.nn.sigmoid(design @ theta)
    weights = probabilities * (1.0 - probabilities)
    return (design.T * weights) @ design + jnp.diag(prior_precision)


def _split_theta(w: ArrayLike, b: ArrayLike) -> Array:
    return jnp.concatenate([jnp.reshape(jnp.asarray(b), (1,)), jnp.asarray(w)])


def log_posterior(
    X: ArrayLike,
    y: ArrayLike,
    w: ArrayLike,
    b: ArrayLike,
    *,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
) -> Array:
    r"""Return the log joint density :math:`\log p(y, w, b \mid X)`.

    It equals the log posterior up to the constant :math:`\log p(y \mid X)`:

    .. math::

        \sum_n \bigl(y_n a_n - \log(1 + e^{a_n})\bigr)
        + \sum_j \log \mathcal N(w_j; 0, s_w^2) + \log \mathcal N(b; 0, s_b^2),
        \qquad a_n = w^\top x_n + b.

    Parameters
    ----------
    X : array_like of shape (num_points, num_features)
    y : array_like of shape (num_points,)
    w : array_like of shape (num_features,)
    b : array_like of shape ()
    prior_scale, intercept_scale : float
        As in :func:`model` (non-hierarchical).

    Returns
    -------
    jax.Array
        A scalar.
    """
    design = _design(X)
    precision = _prior_precision(design, prior_scale, intercept_scale)
    return _log_joint(_split_theta(w, b), design, jnp.asarray(y), precision)


def log_posterior_gradient(
    X: ArrayLike,
    y: ArrayLike,
    w: ArrayLike,
    b: ArrayLike,
    *,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
) -> Array:
    r"""Gradient of the log posterior in :math:`\theta = (b, w)` (seed eq. (3.4)).

    .. math::

        \nabla_\theta \log p(\theta \mid X, y) = \tilde X^\top
        \bigl(y - \sigma(\tilde X \theta)\bigr) - \Lambda\theta.

    Parameters
    ----------
    X, y, w, b, prior_scale, intercept_scale
        As in :func:`log_posterior`.

    Returns
    -------
    jax.Array of shape (num_features + 1,)
        Ordered as :math:`(\partial/\partial b, \partial/\partial w_1, \dots)`.
    """
    design = _design(X)
    precision = _prior_precision(design, prior_scale, intercept_scale)
    return _gradient(_split_theta(w, b), design, jnp.asarray(y), precision)


def log_posterior_hessian(
    X: ArrayLike,
    w: ArrayLike,
    b: ArrayLike,
    *,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
) -> Array:
    r"""Hessian of the log posterior in :math:`\theta = (b, w)` (seed eq. (3.5)).

    .. math::

        \nabla^2_\theta \log p(\theta \mid X, y) = -\tilde X^\top S \tilde X
        - \Lambda, \qquad S_{nn} = \sigma(a_n)(1 - \sigma(a_n)).

    It does not depend on :math:`y`.

    Parameters
    ----------
    X, w, b, prior_scale, intercept_scale
        As in :func:`log_posterior`.

    Returns
    -------
    jax.Array of shape (num_features + 1, num_features + 1)
    """
    design = _design(X)
    precision = _prior_precision(design, prior_scale, intercept_scale)
    return -_negative_hessian(_split_theta(w, b), design, precision)


def _armijo_step(theta, value, direction, decrement, design, y, prior_precision):
    """Halve the Newton step until the log joint rises by a quarter of the forecast.

    The comparison allows the rounding error of the log joint, so that a float32
    run near the mode still accepts the full step.
    """
    slack = 64.0 * jnp.finfo(theta.dtype).eps * (jnp.abs(value) + 1.0)

    def too_low(state):
        step_size, new_value = state
        forecast = 0.25 * step_size * decrement
        return (step_size > 2.0**-30) & ~(new_value >= value + forecast - slack)

    def halve(state):
        step_size, _ = state
        step_size = step_size / 2.0
        new = _log_joint(theta + step_size * direction, design, y, prior_precision)
        return step_size, new

    first = _log_joint(theta + direction, design, y, prior_precision)
    step_size, new_value = jax.lax.while_loop(
        too_low, halve, (jnp.asarray(1.0, theta.dtype), first)
    )
    return theta + step_size * direction, new_value


def _newton_direction(theta, design, y, prior_precision):
    gradient = _gradient(theta, design, y, prior_precision)
    factor = cho_factor(_negative_hessian(theta, design, prior_precision))
    direction = cho_solve(factor, gradient)
    return direction, gradient @ direction


@jax.jit(static_argnames=("max_iterations",))
def _newton(design, y, prior_precision, tolerance, max_iterations):
    theta = jnp.zeros(design.shape[1], design.dtype)
    direction, decrement = _newton_direction(theta, design, y, prior_precision)
    value = _log_joint(theta, design, y, prior_precision)

    def keep_going(carry):
        _, _, _, decrement, iteration = carry
        return (0.5 * decrement > tolerance) & (iteration < max_iterations)

    def step(carry):
        theta, value, direction, decrement, iteration = carry
        theta, value = _armijo_step(
            theta, value, direction, decrement, design, y, prior_precision
        )
        direction, decrement = _newton_direction(theta, design, y, prior_precision)
        return theta, value, direction, decrement, iteration + 1

    theta, value, _, decrement, iteration = jax.lax.while_loop(
        keep_going, step, (theta, value, direction, decrement, 0)
    )
    return theta, value, decrement, iteration


def laplace_newton(
    X: ArrayLike,
    y: ArrayLike,
    *,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
    tolerance: float | None = None,
    max_iterations: int = 100,
) -> LaplaceFit:
    r"""Laplace approximation by the seed's Newton iteration (Example 3.4).

    Starting from :math:`\theta = 0`, Newton's method on the log posterior,

    .. math::

        \theta_{\text{new}} = \theta_{\text{old}} + t\,
        H(\theta_{\text{old}})^{-1} g(\theta_{\text{old}}), \qquad
        g = \tilde X^\top (y - \sigma(\tilde X\theta)) - \Lambda\theta, \quad
        H = \tilde X^\top S \tilde X + \Lambda,

    is eqs. (3.4)-(3.5) of the seed in :math:`d + 1` dimensions. The step size
    :math:`t` starts at 1 and is halved until the log posterior rises (Armijo),
    which only matters far from the mode; near it the iteration converges
    quadratically. It stops when half the Newton decrement,
    :math:`\frac12 g^\top H^{-1} g` (the forecast gain of one more step), is below
    ``tolerance``. Then (section 3.3)

    .. math::

        q(\theta) = \mathcal N(\hat\theta, H^{-1}), \qquad
        \log p(y \mid X) \approx \log p(y, \hat\theta \mid X)
        + \frac{d+1}{2}\log 2\pi - \frac12\log\det H.

    The log posterior is strictly concave, so the mode is unique. The prior scale
    is fixed: for ``hierarchical=True`` use ``numpyro_pgm.fit(...,
    method="laplace")``.

    Parameters
    ----------
    X : array_like of shape (num_points, num_features)
        Features.
    y : array_like of shape (num_points,)
        Labels in {0, 1}.
    prior_scale, intercept_scale : float
        As in :func:`model`.
    tolerance : float, optional
        Stop when :math:`\frac12 g^\top H^{-1} g` (in nats) is below this;
        defaults to 1e-10 in float64 and 1e-5 in float32.
    max_iterations : int
        The most Newton steps to take.

    Returns
    -------
    LaplaceFit
        Mode, precision :math:`H`, covariance :math:`H^{-1}`, iterations, log
        evidence and whether it converged. Computed in the dtype of ``X`` as JAX
        sees it (float64 only with ``jax_enable_x64``).

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import logistic
    >>> data = logistic.simulate(
    ...     jax.random.key(0), num_points=200, num_features=2, w=[1.0, -1.0], b=0.5
    ... )
    >>> fit = logistic.laplace_newton(data["X"], data["y"])
    >>> fit.converged, fit.mode.shape, fit.num_iterations < 10
    (True, (3,), True)
    """
    _validate(X, y, prior_scale, intercept_scale)
    if not isinstance(max_iterations, int | np.integer) or max_iterations < 1:
        raise ValueError(
            f"max_iterations must be a positive int; got {max_iterations!r}."
        )
    design = _design(X)
    if tolerance is None:
        tolerance = 1e-10 if design.dtype == jnp.float64 else 1e-5
    if not tolerance > 0:
        raise ValueError(
            f"tolerance must be > 0 (nats of forecast gain); got {tolerance!r}."
        )
    labels = jnp.asarray(y, design.dtype)
    precision_prior = _prior_precision(design, prior_scale, intercept_scale)
    theta, value, decrement, iterations = _newton(
        design, labels, precision_prior, tolerance, int(max_iterations)
    )
    precision = _negative_hessian(theta, design, precision_prior)
    factor = jnp.linalg.cholesky(precision)
    covariance = cho_solve((factor, True), jnp.eye(theta.size, dtype=theta.dtype))
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(factor)))
    log_evidence = value + 0.5 * theta.size * jnp.log(2.0 * jnp.pi) - 0.5 * log_det
    return LaplaceFit(
        mode=theta,
        precision=precision,
        covariance=covariance,
        num_iterations=int(iterations),
        log_evidence=float(log_evidence),
        converged=bool(0.5 * decrement <= tolerance),
    )
