r"""Bayesian logistic regression, with the seed's Newton-Laplace algorithm.

For points :math:`x_n \in \mathbb{R}^d` with labels :math:`y_n \in \{0, 1\}`,
:math:`n = 1, \dots, N`, the generative process generalises the one-dimensional
model of seed ``003_02afaf35b30b64a9.txt``, Example 3.4, to :math:`d` features
with an intercept:

.. math::

    \tau &\sim \mathrm{HalfNormal}(s_w) \quad
        \text{(only with ``hierarchical=True``; otherwise } \tau = s_w), \\
    b &\sim \mathcal{N}(0, s_b^2), \\
    w_j \mid \tau &\sim \mathcal{N}(0, \tau^2), \qquad j = 1, \dots, d, \\
    y_n \mid w, b &\sim \mathrm{Bernoulli}\bigl(\sigma(w^\top x_n + b)\bigr),

with :math:`\sigma(t) = (1 + e^{-t})^{-1}`, :math:`s_w` = ``prior_scale`` and
:math:`s_b` = ``intercept_scale``. Sites: ``tau`` (hierarchical only), ``b``,
``w`` (plate ``feature``) and ``y`` (plate ``point``).

Writing :math:`\theta = (b, w) \in \mathbb{R}^{d+1}`, :math:`\tilde x_n = (1, x_n)`
and :math:`\Lambda = \mathrm{diag}(s_b^{-2}, s_w^{-2}, \dots, s_w^{-2})`, the
gradient and Hessian of the log posterior (the seed's eqs. (3.4) and (3.5) in
:math:`d + 1` dimensions) are

.. math::

    \nabla \log p(\theta \mid x, y) &= \tilde X^\top (y - \sigma(\tilde X\theta))
        - \Lambda \theta, \\
    \nabla^2 \log p(\theta \mid x, y) &= -\tilde X^\top S \tilde X - \Lambda,
        \qquad S = \mathrm{diag}\bigl(\sigma(\tilde x_n^\top\theta)
        (1 - \sigma(\tilde x_n^\top\theta))\bigr),

and :func:`laplace_newton` runs the seed's Newton iteration on them to give the
Laplace approximation of section 3.3, :math:`q(\theta) = \mathcal N(\hat\theta,
H^{-1})` with :math:`H = \tilde X^\top S \tilde X + \Lambda` at the mode. Any method
of :func:`numpyro_pgm.fit` also applies to :func:`model`; :func:`predict_proba`
turns the draws of any of them into posterior predictive probabilities.

Inputs are checked when they are concrete: ``X`` must be a finite 2-D array, ``y``
must hold 0/1 labels, one per row of ``X``, no column of ``X`` may be constant
when ``y`` is observed (it would duplicate the intercept), and the scales must be
positive. Inside ``jit`` (traced values) the model skips these checks.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: section 3.3, Example 3.4 (Laplace approximation
   for Bayesian logistic regression, eqs. (3.4)-(3.5)), Example 3.6 (mean-field VI
   underestimates marginal variances).
.. [2] C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer (2006),
   section 4.5.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import cho_factor, cho_solve
from jax.typing import ArrayLike
from numpyro import handlers
from scipy.special import expit

from numpyro_pgm.results import InferenceResult

__all__ = [
    "LaplaceFit",
    "laplace_newton",
    "log_posterior",
    "log_posterior_gradient",
    "log_posterior_hessian",
    "model",
    "predict_proba",
    "predictive_draws",
    "simulate",
]

Array = jax.Array

MSG_NOT_BINARY = (
    "y must hold only the labels 0 and 1 (1 = the positive class); got the "
    "value(s) {values}. Encode the classes as 0/1, e.g. "
    "`y = (labels == positive_label).astype(int)`."
)
MSG_CONSTANT_COLUMN = (
    "X has constant column(s) {columns} (zero variance over the {num_points} "
    "points): such a column is confounded with the intercept b, which the model "
    "already has, and it cannot be standardised. Drop it, e.g. "
    "`X = np.delete(X, {columns}, axis=1)`, then standardise the remaining columns."
)
MSG_NON_FINITE = (
    "{name} contains {count} NaN or infinite value(s) (first at index {where}); "
    "the posterior would be NaN. Remove or impute those rows before fitting."
)
MSG_SCALE = (
    "{name} must be a positive, finite number (a prior standard deviation); got "
    "{value!r}. Pass e.g. {name}=1.0 (features standardised to unit variance)."
)


# ----------------------------------------------------------------------- validation


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_scale(name: str, value: Any) -> None:
    if not _is_concrete(value):
        return
    array = np.asarray(value)
    if array.shape != () or not np.isfinite(array) or not array > 0:
        raise ValueError(MSG_SCALE.format(name=name, value=value))


def _check_features(X: Any, name: str = "X") -> None:
    if not _is_concrete(X):
        return
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (num_points, num_features); got "
            f"shape {array.shape}. For a single feature use `{name}[:, None]`; for "
            f"a single point use `{name}[None, :]`."
        )
    bad = ~np.isfinite(array)
    if bad.any():
        where = np.argwhere(bad)[:3].tolist()
        raise ValueError(MSG_NON_FINITE.format(name=name, count=bad.sum(), where=where))


def _check_labels(y: Any, num_points: int) -> None:
    if not _is_concrete(y):
        return
    array = np.asarray(y)
    if array.shape != (num_points,):
        raise ValueError(
            f"y must have shape (num_points,) = ({num_points},), one label per row "
            f"of X; got shape {array.shape}. Check that X and y come from the same "
            "rows (and flatten a column vector with `y.ravel()`)."
        )
    values = np.unique(array)
    wrong = values[(values != 0) & (values != 1)]
    if wrong.size:
        raise ValueError(MSG_NOT_BINARY.format(values=wrong[:5].tolist()))


def _check_constant_columns(X: Any) -> None:
    if not _is_concrete(X):
        return
    array = np.asarray(X)
    if array.shape[0] < 2:
        return
    constant = np.flatnonzero(np.ptp(array, axis=0) == 0)
    if constant.size:
        raise ValueError(
            MSG_CONSTANT_COLUMN.format(
                columns=constant.tolist(), num_points=array.shape[0]
            )
        )


def _validate(X: Any, y: Any, prior_scale: Any, intercept_scale: Any) -> None:
    """Run the cheap checks on concrete inputs (shared by model and Newton)."""
    _check_scale("prior_scale", prior_scale)
    _check_scale("intercept_scale", intercept_scale)
    _check_features(X)
    if y is not None:
        _check_labels(y, np.shape(X)[0])
        _check_constant_columns(X)


# ---------------------------------------------------------------------------- model


def model(
    X: ArrayLike,
    y: ArrayLike | None = None,
    *,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
    hierarchical: bool = False,
) -> None:
    r"""Bayesian logistic regression with an intercept (seed Example 3.4).

    .. math::

        b \sim \mathcal{N}(0, s_b^2), \quad
        w_j \sim \mathcal{N}(0, \tau^2), \quad
        y_n \sim \mathrm{Bernoulli}(\sigma(w^\top x_n + b)),

    with :math:`\tau = s_w`, or :math:`\tau \sim \mathrm{HalfNormal}(s_w)` when
    ``hierarchical=True``.

    Parameters
    ----------
    X : array_like of shape (num_points, num_features)
        Features; standardise them so that a unit ``prior_scale`` is sensible.
    y : array_like of shape (num_points,), optional
        Labels in {0, 1}; ``None`` samples them (the model is generative).
    prior_scale : float
        :math:`s_w`: the prior standard deviation of each weight, or the scale of
        the half-normal prior on :math:`\tau` when ``hierarchical=True``.
    intercept_scale : float
        :math:`s_b`: the prior standard deviation of the intercept.
    hierarchical : bool
        Learn the weights' prior scale :math:`\tau` (site ``tau``).

    Examples
    --------
    >>> import jax, numpy as np
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import logistic
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, -1.0]])
    >>> trace = handlers.trace(handlers.seed(logistic.model, 0)).get_trace(X)
    >>> trace["w"]["value"].shape, trace["y"]["value"].shape
    ((2,), (3,))
    """
    _validate(X, y, prior_scale, intercept_scale)
    X = jnp.asarray(X)
    num_points, num_features = X.shape
    if hierarchical:
        tau = numpyro.sample("tau", dist.HalfNormal(prior_scale))
    else:
        tau = prior_scale
    b = numpyro.sample("b", dist.Normal(0.0, intercept_scale))
    with numpyro.plate("feature", num_features):
        w = numpyro.sample("w", dist.Normal(0.0, tau))
    logits = X @ w + b
    with numpyro.plate("point", num_points):
        numpyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def simulate(
    rng_key: Array,
    *,
    num_points: int,
    num_features: int,
    correlation: float = 0.0,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
    hierarchical: bool = False,
    w: ArrayLike | None = None,
    b: float | None = None,
) -> dict[str, np.ndarray]:
    r"""Draw features, latents and labels by ancestral sampling of :func:`model`.

    The features are standard normal with equal pairwise correlation
    :math:`\rho`: :math:`x_n = \sqrt{1 - \rho}\, z_n + \sqrt{\rho}\, u_n \mathbf 1`
    with :math:`z_n \sim \mathcal N(0, I_d)` and :math:`u_n \sim \mathcal N(0, 1)`,
    so :math:`\mathrm{Cov}(x_n) = (1 - \rho) I + \rho \mathbf 1 \mathbf 1^\top`.
    The latents are drawn from the prior unless ``w`` and/or ``b`` are given.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key.
    num_points, num_features : int
        :math:`N` and :math:`d`.
    correlation : float
        :math:`\rho \in [0, 1)`, the correlation between any two features.
    prior_scale, intercept_scale, hierarchical
        As in :func:`model`.
    w : array_like of shape (num_features,), optional
        True weights; drawn from the prior when ``None``.
    b : float, optional
        True intercept; drawn from the prior when ``None``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``X`` (num_points, num_features) float64, ``y`` (num_points,) int64, ``w``
        (num_features,), ``b`` () and, when hierarchical, ``tau`` ().

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import logistic
    >>> data = logistic.simulate(jax.random.key(0), num_points=5, num_features=2)
    >>> sorted(data), data["X"].shape
    (['X', 'b', 'w', 'y'], (5, 2))
    """
    for name, value in (("num_points", num_points), ("num_features", num_features)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    if not 0.0 <= correlation < 1.0:
        raise ValueError(
            f"correlation must lie in [0, 1) so that the features' covariance is "
            f"positive definite; got {correlation!r}."
        )
    feature_key, model_key = jax.random.split(rng_key)
    noise_key, shared_key = jax.random.split(feature_key)
    independent = jax.random.normal(noise_key, (num_points, num_features))
    shared = jax.random.normal(shared_key, (num_points, 1))
    X = np.asarray(
        np.sqrt(1.0 - correlation) * np.asarray(independent, dtype=np.float64)
        + np.sqrt(correlation) * np.asarray(shared, dtype=np.float64)
    )
    given = {}
    if w is not None:
        given["w"] = jnp.asarray(w)
    if b is not None:
        given["b"] = jnp.asarray(b)
    conditioned = handlers.condition(handlers.seed(model, model_key), given)
    trace = handlers.trace(conditioned).get_trace(
        X,
        prior_scale=prior_scale,
        intercept_scale=intercept_scale,
        hierarchical=hierarchical,
    )
    out = {"X": X, "y": np.asarray(trace["y"]["value"], dtype=np.int64)}
    for name in ("w", "b", "tau"):
        if name in trace:
            out[name] = np.asarray(trace[name]["value"], dtype=np.float64)
    return out


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
    num_features: int, prior_scale: float, intercept_scale: float, dtype: Any
) -> Array:
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
    precision = _prior_precision(
        design.shape[1] - 1, prior_scale, intercept_scale, design.dtype
    )
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
    precision = _prior_precision(
        design.shape[1] - 1, prior_scale, intercept_scale, design.dtype
    )
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
    precision = _prior_precision(
        design.shape[1] - 1, prior_scale, intercept_scale, design.dtype
    )
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
    precision_prior = _prior_precision(
        design.shape[1] - 1, prior_scale, intercept_scale, design.dtype
    )
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


# ----------------------------------------------------------------------- prediction


def _draws(result: InferenceResult | Mapping[str, ArrayLike]) -> tuple[Any, Any]:
    samples = result.samples if isinstance(result, InferenceResult) else result
    if not isinstance(samples, Mapping) or "w" not in samples or "b" not in samples:
        raise TypeError(
            "result must be an InferenceResult of numpyro_pgm.fit on "
            "logistic.model, or a mapping with draws 'w' (chain, draw, num_features) "
            f"and 'b' (chain, draw); got {type(result).__name__}"
            + (f" with keys {sorted(samples)}" if isinstance(samples, Mapping) else "")
            + "."
        )
    w = np.asarray(samples["w"], dtype=np.float64)
    b = np.asarray(samples["b"], dtype=np.float64)
    if w.ndim != 3 or b.shape != w.shape[:2]:
        raise ValueError(
            "draws must be shaped (chain, draw, num_features) for 'w' and (chain, "
            f"draw) for 'b'; got {w.shape} and {b.shape}."
        )
    return w, b


def predictive_draws(
    result: InferenceResult | Mapping[str, ArrayLike], X_new: ArrayLike
) -> np.ndarray:
    r"""Per-draw probabilities :math:`\sigma(w^{(s)\top} x + b^{(s)})` at new points.

    Parameters
    ----------
    result : InferenceResult or mapping
        A result of :func:`numpyro_pgm.fit` on :func:`model` (any method), or a
        mapping with draws ``w`` (chain, draw, num_features) and ``b`` (chain,
        draw), such as :meth:`LaplaceFit.sample`.
    X_new : array_like of shape (num_new, num_features)
        New points, transformed like the training features.

    Returns
    -------
    numpy.ndarray of shape (chain, draw, num_new)
        :math:`P(y = 1 \mid x, w^{(s)}, b^{(s)})` for every draw, in float64.
    """
    w, b = _draws(result)
    _check_features(X_new, "X_new")
    X_new = np.asarray(X_new, dtype=np.float64)
    if X_new.shape[1] != w.shape[-1]:
        raise ValueError(
            f"X_new has {X_new.shape[1]} column(s) but the model was fitted with "
            f"{w.shape[-1]} feature(s); pass the same columns, transformed the same "
            "way (e.g. standardised with the training means and sds)."
        )
    logits = np.einsum("cdk,nk->cdn", w, X_new) + b[..., None]
    return expit(logits)


def predict_proba(
    result: InferenceResult | Mapping[str, ArrayLike], X_new: ArrayLike
) -> np.ndarray:
    r"""Posterior predictive probability :math:`P(y = 1 \mid x, \mathcal D)`.

    .. math::

        P(y = 1 \mid x, \mathcal D) = \int \sigma(w^\top x + b)\,
        p(w, b \mid \mathcal D)\, dw\, db
        \approx \frac1S \sum_{s=1}^S \sigma(w^{(s)\top} x + b^{(s)}),

    averaged over every draw of every chain, whichever method produced them.

    Parameters
    ----------
    result : InferenceResult or mapping
        As in :func:`predictive_draws`.
    X_new : array_like of shape (num_new, num_features)
        New points.

    Returns
    -------
    numpy.ndarray of shape (num_new,)
        Probabilities of the class 1, in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import logistic
    >>> draws = {"w": np.zeros((1, 4, 2)), "b": np.zeros((1, 4))}
    >>> logistic.predict_proba(draws, np.ones((3, 2)))
    array([0.5, 0.5, 0.5])
    """
    return predictive_draws(result, X_new).mean(axis=(0, 1))
