r"""Linear-Gaussian state-space models: Kalman filter, smoother, sampler, forecasts.

The state-space model of seed ``003_02afaf35b30b64a9.txt``, Example 3.3, links latent
states :math:`z_t \in \mathbb{R}^m` and observations :math:`y_t \in \mathbb{R}^d`:

.. math::

    z_1 \sim \mathcal{N}(m_0, P_0), \quad
    z_t = F z_{t-1} + \epsilon_t, \quad \epsilon_t \sim \mathcal{N}(0, Q), \quad
    y_t = H z_t + \eta_t, \quad \eta_t \sim \mathcal{N}(0, R).

The posterior over states is tractable only in this linear-Gaussian case (seed 003,
Example 3.3): every step of the Kalman filter and of the Rauch-Tung-Striebel smoother is
the Gaussian conditioning formula of seed ``000_7a39c8fab34c037d.txt``, section 5 ("The
Multivariate Gaussian", conditional of a multivariate Gaussian),
:math:`\mu_{1|2} = \mu_1 + \Sigma_{12}\Sigma_{22}^{-1}(x_2 - \mu_2)`.

Models are NumPyro functions, generative when ``y`` is ``None``, with the time axis in
a plate named ``time``:

- :func:`model` integrates the states out: its ``y`` site's log density is the Kalman
  filter's, one term :math:`\log p(y_t \mid y_{1:t-1})` per time step.
- :func:`latent_state_model` is the same model with explicit, non-centred states.
- :func:`stochastic_volatility_model` is a nonlinear model of the seed's form.

Missing observations are ``NaN``: the filter skips their update step. Initial states
are diffuse but proper: :math:`P_0 = 10^7 I` by default (statsmodels' "approximate
diffuse" initialisation uses :math:`10^6`), so the first observation's term is nearly
flat; drop it to reproduce exact-diffuse maximum likelihood (Durbin & Koopman, 7.2).

References
----------
.. [1] Durbin, J. & Koopman, S. J. (2012). *Time Series Analysis by State Space
   Methods*, 2nd ed. Oxford University Press.
.. [2] Särkkä, S. (2013). *Bayesian Filtering and Smoothing*. Cambridge University
   Press.
.. [3] Särkkä, S. & García-Fernández, Á. F. (2021). Temporal parallelization of
   Bayesian smoothers. *IEEE Transactions on Automatic Control*, 66(1), 299-306.
.. [4] Kim, S., Shephard, N. & Chib, S. (1998). Stochastic volatility: likelihood
   inference and comparison with ARCH models. *Review of Economic Studies*, 65(3).
"""

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import block_diag, cho_solve, solve_triangular
from jax.typing import ArrayLike

from numpyro_pgm._validation import allow_missing

__all__ = [
    "FilterResult",
    "ForecastResult",
    "LinearGaussianSSM",
    "SmootherResult",
    "combine",
    "ffbs",
    "forecast",
    "kalman_filter",
    "latent_state_model",
    "local_level",
    "local_level_model",
    "local_level_prior",
    "local_linear_trend",
    "model",
    "parallel_kalman_filter",
    "rts_smoother",
    "seasonal",
    "simulate",
    "stochastic_volatility_model",
]

Array = jax.Array

MSG_SHAPE = (
    "{name} must have shape {expected} for a model with {m} state(s) and {d} "
    "observation(s) per time step; got shape {got}. Build the model with "
    "local_level/local_linear_trend/seasonal/combine, or fix the array's shape; for a "
    "batch of parameter draws, map over it with jax.vmap."
)
MSG_Y_NDIM = (
    "y must have shape (num_timesteps, {d}){univariate}; got shape {got}. Reshape it, "
    "e.g. `y.reshape(-1, {d})`."
)
MSG_Y_INF = (
    "y must be finite or NaN (NaN marks a missing value); got {count} infinite "
    "value(s), first at index {index}. Replace them with NaN to skip those steps."
)
MSG_NEGATIVE = (
    "{name} must be a non-negative variance; got {value}. Pass a variance (a squared "
    "standard deviation), e.g. `{name}=scale**2`."
)


class LinearGaussianSSM(NamedTuple):
    r"""Parameters of a linear-Gaussian state-space model (a JAX pytree).

    Attributes
    ----------
    transition_matrix : Array
        :math:`F`, shape ``(m, m)``.
    observation_matrix : Array
        :math:`H`, shape ``(d, m)``.
    transition_cov : Array
        :math:`Q`, shape ``(m, m)``, positive semi-definite.
    observation_cov : Array
        :math:`R`, shape ``(d, d)``, positive semi-definite.
    initial_mean : Array
        :math:`m_0`, the mean of :math:`z_1`, shape ``(m,)``.
    initial_cov : Array
        :math:`P_0`, the covariance of :math:`z_1`, shape ``(m, m)``.
    """

    transition_matrix: Array
    observation_matrix: Array
    transition_cov: Array
    observation_cov: Array
    initial_mean: Array
    initial_cov: Array


class FilterResult(NamedTuple):
    r"""Output of the Kalman filter; leading axis is time.

    Attributes
    ----------
    log_likelihood : Array
        :math:`\log p(y_{1:T})`, a scalar.
    log_likelihood_terms : Array
        :math:`\log p(y_t \mid y_{1:t-1})`, shape ``(T,)``; zero where missing.
    filtered_means, filtered_covs : Array
        Moments of :math:`p(z_t \mid y_{1:t})`, shapes ``(T, m)``, ``(T, m, m)``.
    predicted_means, predicted_covs : Array
        Moments of :math:`p(z_t \mid y_{1:t-1})`, shapes ``(T, m)``, ``(T, m, m)``.
    """

    log_likelihood: Array
    log_likelihood_terms: Array
    filtered_means: Array
    filtered_covs: Array
    predicted_means: Array
    predicted_covs: Array


class SmootherResult(NamedTuple):
    r"""Moments of :math:`p(z_t \mid y_{1:T})`, shapes ``(T, m)`` and ``(T, m, m)``."""

    smoothed_means: Array
    smoothed_covs: Array


class ForecastResult(NamedTuple):
    r"""Moments of the ``horizon``-step predictive; leading axis is the step ahead.

    Attributes
    ----------
    observation_means, observation_covs : Array
        Of :math:`p(y_{T+k} \mid y_{1:T})`, shapes ``(horizon, d)``,
        ``(horizon, d, d)``.
    state_means, state_covs : Array
        Of :math:`p(z_{T+k} \mid y_{1:T})`, shapes ``(horizon, m)``,
        ``(horizon, m, m)``.
    """

    observation_means: Array
    observation_covs: Array
    state_means: Array
    state_covs: Array


# ----------------------------------------------------------------------------- checks


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _variance(name: str, value: ArrayLike) -> Array:
    if _concrete(value) and np.any(np.asarray(value) < 0):
        raise ValueError(MSG_NEGATIVE.format(name=name, value=value))
    return jnp.asarray(value)


def _check_ssm(ssm: LinearGaussianSSM) -> tuple[int, int]:
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
    return m, d


def _check_observations(y: ArrayLike, d: int) -> Array:
    """Return ``y`` as ``(T, d)``; ``(T,)`` is accepted when ``d == 1``."""
    shape = np.shape(y)
    if len(shape) == 1 and d == 1:
        y = jnp.reshape(y, (-1, 1))
    elif len(shape) != 2 or shape[1] != d:
        univariate = " or (num_timesteps,)" if d == 1 else ""
        raise ValueError(MSG_Y_NDIM.format(d=d, univariate=univariate, got=shape))
    if _concrete(y):
        infinite = np.isinf(np.asarray(y))
        if infinite.any():
            index = tuple(int(i[0]) for i in np.nonzero(infinite))
            raise ValueError(MSG_Y_INF.format(count=infinite.sum(), index=index))
    return jnp.asarray(y)


def _checked(ssm: LinearGaussianSSM, y: ArrayLike) -> Array:
    return _check_observations(y, _check_ssm(ssm)[1])


# ----------------------------------------------------------------------------- builders


def _ssm(F, H, Q, R, m0, P0) -> LinearGaussianSSM:
    arrays = [jnp.asarray(a) for a in (F, H, Q, R, m0, P0)]
    dtype = jnp.result_type(*arrays, float)
    ssm = LinearGaussianSSM(*(a.astype(dtype) for a in arrays))
    _check_ssm(ssm)
    return ssm


def local_level(
    level_variance: ArrayLike,
    observation_variance: ArrayLike = 0.0,
    *,
    initial_mean: ArrayLike = 0.0,
    initial_variance: ArrayLike = 1e7,
) -> LinearGaussianSSM:
    r"""Local level (random walk plus noise): :math:`\mu_t = \mu_{t-1} + \xi_t`.

    .. math::

        y_t = \mu_t + \varepsilon_t, \quad \varepsilon_t \sim \mathcal{N}(0,
        \sigma^2_\varepsilon), \quad \xi_t \sim \mathcal{N}(0, \sigma^2_\xi).

    Parameters
    ----------
    level_variance : ArrayLike
        :math:`\sigma^2_\xi`.
    observation_variance : ArrayLike, default 0.0
        :math:`\sigma^2_\varepsilon`.
    initial_mean, initial_variance : ArrayLike
        Mean and variance of :math:`\mu_1` (default diffuse: 0 and :math:`10^7`).

    Returns
    -------
    LinearGaussianSSM
        One state, one observation.

    Examples
    --------
    >>> local_level(1469.1, 15099.0).transition_cov
    Array([[1469.1]], dtype=float32)
    """
    q = _variance("level_variance", level_variance)
    r = _variance("observation_variance", observation_variance)
    p0 = _variance("initial_variance", initial_variance)
    one = jnp.ones((1, 1))
    return _ssm(one, one, q * one, r * one, jnp.reshape(initial_mean, (1,)), p0 * one)


def local_linear_trend(
    level_variance: ArrayLike,
    slope_variance: ArrayLike,
    observation_variance: ArrayLike = 0.0,
    *,
    initial_mean: ArrayLike = 0.0,
    initial_variance: ArrayLike = 1e7,
) -> LinearGaussianSSM:
    r"""Local linear trend: a level :math:`\mu_t` whose slope :math:`\nu_t` walks.

    .. math::

        \mu_t = \mu_{t-1} + \nu_{t-1} + \xi_t, \quad \nu_t = \nu_{t-1} + \zeta_t,
        \quad y_t = \mu_t + \varepsilon_t,

    with :math:`\xi_t, \zeta_t, \varepsilon_t` independent, of variances
    ``level_variance``, ``slope_variance`` and ``observation_variance``; the state is
    :math:`(\mu_t, \nu_t)` with mean ``initial_mean`` and covariance
    ``initial_variance`` times the identity.

    Returns
    -------
    LinearGaussianSSM
        Two states, one observation.
    """
    q = jnp.stack(
        [
            _variance("level_variance", level_variance),
            _variance("slope_variance", slope_variance),
        ]
    )
    r = _variance("observation_variance", observation_variance)
    p0 = _variance("initial_variance", initial_variance)
    F = jnp.array([[1.0, 1.0], [0.0, 1.0]])
    H = jnp.array([[1.0, 0.0]])
    m0 = jnp.broadcast_to(jnp.asarray(initial_mean), (2,))
    return _ssm(F, H, jnp.diag(q), jnp.reshape(r, (1, 1)), m0, p0 * jnp.eye(2))


def seasonal(
    period: int,
    seasonal_variance: ArrayLike,
    observation_variance: ArrayLike = 0.0,
    *,
    initial_variance: ArrayLike = 1e7,
) -> LinearGaussianSSM:
    r"""Dummy-variable seasonal component: the last ``period`` effects sum to noise.

    .. math::

        \gamma_t = -\sum_{j=1}^{s-1} \gamma_{t-j} + \omega_t, \quad
        \omega_t \sim \mathcal{N}(0, \sigma^2_\omega), \quad y_t = \gamma_t +
        \varepsilon_t,

    with :math:`s` = ``period``; the state is :math:`(\gamma_t, \dots,
    \gamma_{t-s+2})`, of dimension :math:`s - 1`.

    Returns
    -------
    LinearGaussianSSM
        ``period - 1`` states, one observation.
    """
    if not isinstance(period, int | np.integer) or period < 2:
        raise ValueError(
            f"period must be an integer >= 2 (the number of seasons in a cycle); got "
            f"{period!r}. Use e.g. period=12 for monthly data with a yearly cycle."
        )
    q = _variance("seasonal_variance", seasonal_variance)
    r = _variance("observation_variance", observation_variance)
    p0 = _variance("initial_variance", initial_variance)
    m = period - 1
    F = jnp.zeros((m, m)).at[0].set(-1.0).at[1:, :-1].set(jnp.eye(m - 1))
    H = jnp.zeros((1, m)).at[0, 0].set(1.0)
    Q = jnp.zeros((m, m)).at[0, 0].set(q)
    return _ssm(F, H, Q, jnp.reshape(r, (1, 1)), jnp.zeros(m), p0 * jnp.eye(m))


def combine(*components: LinearGaussianSSM) -> LinearGaussianSSM:
    r"""Stack components with the same observations into one model.

    States are stacked (block-diagonal :math:`F`, :math:`Q`, :math:`P_0`), the
    observation is the sum of the components' observations,
    :math:`H = [H_1, \dots, H_K]`, and their observation noises add:
    :math:`R = \sum_k R_k`.

    Examples
    --------
    >>> structure = combine(local_linear_trend(1.0, 0.1, 2.0), seasonal(4, 0.5))
    >>> structure.transition_matrix.shape, structure.observation_matrix.shape
    ((5, 5), (1, 5))
    """
    if not components:
        raise ValueError("combine needs at least one component; got none.")
    d = {_check_ssm(c)[1] for c in components}
    if len(d) > 1:
        raise ValueError(
            f"components must have the same observation dimension; got {sorted(d)}. "
            "Combine only components that describe the same observations."
        )
    return _ssm(
        block_diag(*(c.transition_matrix for c in components)),
        jnp.concatenate([c.observation_matrix for c in components], axis=1),
        block_diag(*(c.transition_cov for c in components)),
        sum(c.observation_cov for c in components),
        jnp.concatenate([c.initial_mean for c in components]),
        block_diag(*(c.initial_cov for c in components)),
    )


# ------------------------------------------------------------------------ filtering


def _mask(ssm: LinearGaussianSSM, y: Array) -> tuple[Array, Array, Array]:
    r"""Per-time ``H_t, R_t, y_t`` in which a missing component has no effect.

    A missing component becomes a dummy observation 0 of a zero row of ``H`` with
    variance :math:`1/(2\pi)`: its density is exactly one, its gain is zero, and no
    NaN enters the arithmetic (so gradients stay finite).
    """
    observed = ~jnp.isnan(y)
    y_clean = jnp.where(observed, y, 0.0)
    H = jnp.where(observed[:, :, None], ssm.observation_matrix[None], 0.0)
    both = observed[:, :, None] & observed[:, None, :]
    dummy = jnp.eye(y.shape[1], dtype=y.dtype)[None] / (2 * jnp.pi)
    R = jnp.where(both, ssm.observation_cov[None], dummy)
    return H, R, y_clean


def _update(mean, cov, H, R, y):
    """Condition :math:`N(mean, cov)` on :math:`y = H z + N(0, R)` (seed 000, §5)."""
    S = H @ cov @ H.T + R
    chol = jnp.linalg.cholesky(S)
    gain = cho_solve((chol, True), H @ cov).T
    residual = y - H @ mean
    joseph = jnp.eye(mean.shape[0], dtype=mean.dtype) - gain @ H
    cov = joseph @ cov @ joseph.T + gain @ R @ gain.T
    white = solve_triangular(chol, residual, lower=True)
    log_density = (
        -0.5 * white @ white
        - jnp.log(jnp.diag(chol)).sum()
        - 0.5 * y.shape[0] * jnp.log(2 * jnp.pi)
    )
    return mean + gain @ residual, 0.5 * (cov + cov.T), log_density


@jax.jit
def _filter(ssm: LinearGaussianSSM, y: Array) -> FilterResult:
    F, Q = ssm.transition_matrix, ssm.transition_cov

    def step(carry, inputs):
        mean, cov = carry
        mean_f, cov_f, log_density = _update(mean, cov, *inputs)
        return (F @ mean_f, F @ cov_f @ F.T + Q), (
            mean_f,
            cov_f,
            log_density,
            mean,
            cov,
        )

    init = (ssm.initial_mean, ssm.initial_cov)
    _, (means, covs, terms, pred_means, pred_covs) = jax.lax.scan(
        step, init, _mask(ssm, y)
    )
    return FilterResult(terms.sum(), terms, means, covs, pred_means, pred_covs)


def kalman_filter(ssm: LinearGaussianSSM, y: ArrayLike) -> FilterResult:
    r"""Kalman filter by a sequential ``lax.scan``; ``NaN`` entries of ``y`` skipped.

    .. math::

        z_t \mid y_{1:t-1} \sim \mathcal{N}(\hat m_t, \hat P_t), \quad
        S_t = H \hat P_t H^\top + R, \quad K_t = \hat P_t H^\top S_t^{-1},

        m_t = \hat m_t + K_t (y_t - H \hat m_t), \quad
        P_t = (I - K_t H) \hat P_t (I - K_t H)^\top + K_t R K_t^\top,

        \hat m_{t+1} = F m_t, \quad \hat P_{t+1} = F P_t F^\top + Q, \quad
        \log p(y_{1:T}) = \sum_t \log \mathcal{N}(y_t; H \hat m_t, S_t).

    Parameters
    ----------
    ssm : LinearGaussianSSM
        Model parameters.
    y : ArrayLike
        Observations, shape ``(T, d)`` (or ``(T,)`` when ``d == 1``); ``NaN`` marks a
        missing component, which gets no update step.

    Returns
    -------
    FilterResult
        Log-likelihood (with per-step terms), filtered and predicted moments.

    References
    ----------
    Durbin & Koopman (2012), section 4.3; Särkkä (2013), section 4.3.
    """
    return _filter(ssm, _checked(ssm, y))


def _element(F, Q, H, R, y):
    r"""Build the filtering element :math:`(A, b, C, \eta, J)` of Särkkä et al."""
    S = H @ Q @ H.T + R
    HF = H @ F
    chol = (jnp.linalg.cholesky(S), True)
    gain = cho_solve(chol, H @ Q).T
    A = F - gain @ HF
    C = Q - gain @ S @ gain.T
    eta = HF.T @ cho_solve(chol, y)
    J = HF.T @ cho_solve(chol, HF)
    return A, gain @ y, 0.5 * (C + C.T), eta, 0.5 * (J + J.T)


def _compose(earlier, later):
    """Associative combination of two filtering elements (their eq. 13)."""
    A1, b1, C1, eta1, J1 = earlier
    A2, b2, C2, eta2, J2 = later
    eye = jnp.eye(A1.shape[0], dtype=A1.dtype)
    forward = jnp.linalg.solve((eye + C1 @ J2).T, A2.T).T  # A2 (I + C1 J2)^-1
    backward = jnp.linalg.solve((eye + J2 @ C1).T, A1).T  # A1' (I + J2 C1)^-1
    C = forward @ C1 @ A2.T + C2
    J = backward @ J2 @ A1 + J1
    return (
        forward @ A1,
        forward @ (b1 + C1 @ eta2) + b2,
        0.5 * (C + C.T),
        backward @ (eta2 - J2 @ b1) + eta1,
        0.5 * (J + J.T),
    )


def parallel_kalman_filter(ssm: LinearGaussianSSM, y: ArrayLike) -> FilterResult:
    r"""Kalman filter in :math:`O(\log T)` depth by ``jax.lax.associative_scan``.

    Each time step is an element :math:`(A_t, b_t, C_t, \eta_t, J_t)` that maps the
    filtering density at :math:`t-1` to the one at :math:`t`; the elements compose
    associatively, so all prefixes (the filtering densities) come from one parallel
    scan. A missing observation is an element with no update. The log-likelihood terms
    are then computed in parallel from the predicted moments. Same inputs and output
    as :func:`kalman_filter`, equal to it up to rounding.

    Notes
    -----
    Composing elements solves :math:`(I + C_i J_j)`, whose condition number grows with
    the prior variance: with the diffuse default :math:`P_0 = 10^7 I` and several
    states, float32 loses the filtered covariances (use float64, a tighter
    ``initial_cov``, or the sequential :func:`kalman_filter`, which uses the Joseph
    form and stays accurate in float32).

    Returns
    -------
    FilterResult
        As from :func:`kalman_filter`.

    References
    ----------
    Särkkä, S. & García-Fernández, Á. F. (2021), section IV (Lemmas 7-8).
    """
    return _parallel_filter(ssm, _checked(ssm, y))


@jax.jit
def _parallel_filter(ssm: LinearGaussianSSM, y: Array) -> FilterResult:
    F, Q = ssm.transition_matrix, ssm.transition_cov
    H, R, y_clean = _mask(ssm, y)
    elements = jax.vmap(_element, in_axes=(None, None, 0, 0, 0))(F, Q, H, R, y_clean)
    m0, P0 = ssm.initial_mean, ssm.initial_cov
    first_mean, first_cov, _ = _update(m0, P0, H[0], R[0], y_clean[0])
    zeros = jnp.zeros_like(P0)
    first = (zeros, first_mean, first_cov, jnp.zeros_like(m0), zeros)
    elements = tuple(e.at[0].set(f) for e, f in zip(elements, first, strict=True))
    _, means, covs, _, _ = jax.lax.associative_scan(jax.vmap(_compose), elements)
    pred_means = jnp.concatenate([m0[None], means[:-1] @ F.T])
    pred_covs = jnp.concatenate([P0[None], F @ covs[:-1] @ F.T + Q[None]])
    _, _, terms = jax.vmap(_update)(pred_means, pred_covs, H, R, y_clean)
    return FilterResult(terms.sum(), terms, means, covs, pred_means, pred_covs)


# ------------------------------------------------------------------------ smoothing


def _backward_inputs(ssm: LinearGaussianSSM, result: FilterResult) -> tuple:
    r"""Collect filtered moments at t < T, predicted at t + 1, and gains :math:`G_t`."""
    cross = ssm.transition_matrix @ result.filtered_covs[:-1]  # F P_t
    gains = jnp.linalg.solve(result.predicted_covs[1:], cross)  # G_t^T
    return (
        result.filtered_means[:-1],
        result.filtered_covs[:-1],
        result.predicted_means[1:],
        result.predicted_covs[1:],
        jnp.swapaxes(gains, -1, -2),
    )


def rts_smoother(ssm: LinearGaussianSSM, y: ArrayLike) -> SmootherResult:
    r"""Rauch-Tung-Striebel smoother: the moments of :math:`p(z_t \mid y_{1:T})`.

    .. math::

        G_t = P_t F^\top \hat P_{t+1}^{-1}, \quad
        m^s_t = m_t + G_t (m^s_{t+1} - \hat m_{t+1}), \quad
        P^s_t = P_t + G_t (P^s_{t+1} - \hat P_{t+1}) G_t^\top,

    run backwards from :math:`m^s_T = m_T`, :math:`P^s_T = P_T` (notation of
    :func:`kalman_filter`).

    Returns
    -------
    SmootherResult
        Smoothed means ``(T, m)`` and covariances ``(T, m, m)``.

    References
    ----------
    Särkkä (2013), section 8.2; Durbin & Koopman (2012), section 4.4.
    """
    return _smooth(ssm, _checked(ssm, y))


@jax.jit
def _smooth(ssm: LinearGaussianSSM, y: Array) -> SmootherResult:
    result = _filter(ssm, y)

    def step(carry, inputs):
        mean_s, cov_s = carry
        mean, cov, pred_mean, pred_cov, gain = inputs
        mean = mean + gain @ (mean_s - pred_mean)
        cov = cov + gain @ (cov_s - pred_cov) @ gain.T
        return (mean, 0.5 * (cov + cov.T)), (mean, cov)

    last = (result.filtered_means[-1], result.filtered_covs[-1])
    inputs = _backward_inputs(ssm, result)
    _, (means, covs) = jax.lax.scan(step, last, inputs, reverse=True)
    return SmootherResult(
        jnp.concatenate([means, last[0][None]]), jnp.concatenate([covs, last[1][None]])
    )


def _sample_gaussian(noise: Array, mean: Array, cov: Array) -> Array:
    """Draw from a possibly singular Gaussian by a clipped eigendecomposition."""
    values, vectors = jnp.linalg.eigh(0.5 * (cov + cov.T))
    return mean + vectors @ (jnp.sqrt(jnp.clip(values, 0.0)) * noise)


def ffbs(rng_key: Array, ssm: LinearGaussianSSM, y: ArrayLike) -> Array:
    r"""Forward-filter backward-sample: one draw of the whole path :math:`z_{1:T}`.

    .. math::

        z_T \sim \mathcal{N}(m_T, P_T), \quad
        z_t \mid z_{t+1} \sim \mathcal{N}\big(m_t + G_t (z_{t+1} - \hat m_{t+1}),\
        P_t - G_t \hat P_{t+1} G_t^\top\big),

    a draw from the joint smoothing distribution :math:`p(z_{1:T} \mid y_{1:T})`.
    Pure and vmappable: ``jax.vmap(ffbs)(keys, ssms, y)`` with ``ssms`` a batch of
    parameter draws (leading axis on every field) gives one path per draw.

    Parameters
    ----------
    rng_key : Array
        A JAX PRNG key.
    ssm : LinearGaussianSSM
        Model parameters.
    y : ArrayLike
        Observations as in :func:`kalman_filter`.

    Returns
    -------
    Array
        The sampled states, shape ``(T, m)``.

    Examples
    --------
    One state path per posterior draw of the local-level variances:

    >>> y = jnp.array([1.0, 0.5, jnp.nan, 2.0])
    >>> level_variances, observation_variances = jnp.array([1.0, 2.0]), jnp.ones(2)
    >>> keys = jax.random.split(jax.random.key(0), 2)
    >>> draw = lambda k, q, r: ffbs(k, local_level(q, r, initial_variance=10.0), y)
    >>> jax.vmap(draw)(keys, level_variances, observation_variances).shape
    (2, 4, 1)

    References
    ----------
    Frühwirth-Schnatter, S. (1994). Data augmentation and dynamic linear models.
    *J. Time Series Analysis*, 15(2); Carter, C. K. & Kohn, R. (1994), *Biometrika*.
    """
    return _ffbs(rng_key, ssm, _checked(ssm, y))


@jax.jit
def _ffbs(rng_key: Array, ssm: LinearGaussianSSM, y: Array) -> Array:
    result = _filter(ssm, y)
    noise = jax.random.normal(rng_key, result.filtered_means.shape)
    last = _sample_gaussian(
        noise[-1], result.filtered_means[-1], result.filtered_covs[-1]
    )

    def step(state_next, inputs):
        eps, mean, cov, pred_mean, pred_cov, gain = inputs
        mean = mean + gain @ (state_next - pred_mean)
        state = _sample_gaussian(eps, mean, cov - gain @ pred_cov @ gain.T)
        return state, state

    inputs = (noise[:-1], *_backward_inputs(ssm, result))
    _, states = jax.lax.scan(step, last, inputs, reverse=True)
    return jnp.concatenate([states, last[None]])


def forecast(ssm: LinearGaussianSSM, y: ArrayLike, horizon: int) -> ForecastResult:
    r"""Predictive moments :math:`k = 1, \dots,` ``horizon`` steps after the data.

    .. math::

        \hat m_{T+k} = F \hat m_{T+k-1}, \quad
        \hat P_{T+k} = F \hat P_{T+k-1} F^\top + Q, \quad
        y_{T+k} \mid y_{1:T} \sim
        \mathcal{N}(H \hat m_{T+k}, H \hat P_{T+k} H^\top + R),

    from :math:`\hat m_T = m_T`, :math:`\hat P_T = P_T` (filtered).

    Returns
    -------
    ForecastResult
        Observation and state means and covariances, leading axis ``horizon``.
    """
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(
            f"horizon must be a positive integer (steps ahead); got {horizon!r}."
        )
    return _forecast(ssm, _checked(ssm, y), horizon)


@partial(jax.jit, static_argnames="horizon")
def _forecast(ssm: LinearGaussianSSM, y: Array, horizon: int) -> ForecastResult:
    result = _filter(ssm, y)
    F, H = ssm.transition_matrix, ssm.observation_matrix

    def step(carry, _):
        mean, cov = F @ carry[0], F @ carry[1] @ F.T + ssm.transition_cov
        return (mean, cov), (H @ mean, H @ cov @ H.T + ssm.observation_cov, mean, cov)

    init = (result.filtered_means[-1], result.filtered_covs[-1])
    return ForecastResult(*jax.lax.scan(step, init, length=horizon)[1])


# ---------------------------------------------------------------------- simulation


def _cholesky_psd(cov: Array) -> Array:
    r"""Return :math:`L` with :math:`L L^\top = \Sigma`, zero rows allowed."""
    zero = jnp.diag(cov) == 0
    factor = jnp.linalg.cholesky(cov + jnp.diag(zero.astype(cov.dtype)))
    return jnp.where(zero[None, :], 0.0, factor)


def _propagate(ssm: LinearGaussianSSM, innovations: Array) -> Array:
    """States from standard-normal innovations, shape ``(T, m)`` (non-centred)."""
    first = ssm.initial_mean + _cholesky_psd(ssm.initial_cov) @ innovations[0]
    root = _cholesky_psd(ssm.transition_cov)

    def step(state, eps):
        state = ssm.transition_matrix @ state + root @ eps
        return state, state

    return jnp.concatenate([first[None], jax.lax.scan(step, first, innovations[1:])[1]])


def simulate(
    rng_key: Array, ssm: LinearGaussianSSM, *, num_timesteps: int
) -> dict[str, Array]:
    """Draw states and observations by ancestral sampling.

    Returns
    -------
    dict[str, Array]
        ``"y"``: observations ``(num_timesteps, d)``; ``"states"``: ``(num_timesteps,
        m)``.

    Examples
    --------
    >>> draw = simulate(jax.random.key(0), local_level(1.0, 1.0), num_timesteps=5)
    >>> draw["y"].shape, draw["states"].shape
    ((5, 1), (5, 1))
    """
    m, d = _check_ssm(ssm)
    state_key, noise_key = jax.random.split(rng_key)
    states = _propagate(ssm, jax.random.normal(state_key, (num_timesteps, m)))
    noise = jax.random.normal(noise_key, (num_timesteps, d))
    y = states @ ssm.observation_matrix.T + noise @ _cholesky_psd(ssm.observation_cov).T
    return {"y": y, "states": states}


# -------------------------------------------------------------------------- models


class _MarginalObservations(dist.Distribution):
    r"""Observations of a linear-Gaussian model with the states integrated out.

    Batch shape ``(T,)``: ``log_prob`` gives :math:`\log p(y_t \mid y_{1:t-1})`, whose
    sum is the exact marginal log-likelihood (the terms are not independent; do not
    subsample the time plate).
    """

    arg_constraints = {}
    pytree_data_fields = ("ssm",)
    pytree_aux_fields = ("univariate",)

    def __init__(self, ssm, num_timesteps, univariate, *, validate_args=None):
        self.ssm, self.univariate = ssm, univariate
        event_shape = () if univariate else ssm.observation_matrix.shape[-2:-1]
        super().__init__((num_timesteps,), event_shape, validate_args=validate_args)

    @property
    def support(self):
        return (
            dist.constraints.real if self.univariate else dist.constraints.real_vector
        )

    def sample(self, key, sample_shape=()):
        keys = jax.random.split(key, math.prod(sample_shape))
        T = self.batch_shape[0]
        y = jax.vmap(lambda k: simulate(k, self.ssm, num_timesteps=T)["y"])(keys)
        return y.reshape(sample_shape + self.batch_shape + self.event_shape)

    def log_prob(self, value):
        value = value[..., None] if self.univariate else value
        flat = value.reshape((-1,) + value.shape[-2:])
        terms = jax.vmap(lambda y: _filter(self.ssm, y).log_likelihood_terms)(flat)
        return terms.reshape(value.shape[:-1])


def _resolve(ssm: LinearGaussianSSM | Callable[[], LinearGaussianSSM]):
    return ssm() if callable(ssm) else ssm


def _num_timesteps(y, num_timesteps) -> int:
    if y is None and num_timesteps is None:
        raise ValueError(
            "num_timesteps is required when y is None (generative mode); got None. "
            "Pass e.g. num_timesteps=100, or pass observations y."
        )
    return int(np.shape(y)[0]) if y is not None else int(num_timesteps)


@allow_missing("y")
def model(
    y: ArrayLike | None = None,
    *,
    ssm: LinearGaussianSSM | Callable[[], LinearGaussianSSM],
    num_timesteps: int | None = None,
) -> None:
    r"""Linear-Gaussian state-space model with the states integrated out.

    .. math::

        \theta \sim p(\theta), \quad
        y_{1:T} \mid \theta \sim p(y_{1:T} \mid \theta) = \prod_{t=1}^T
        \mathcal{N}(y_t; H \hat m_t, H \hat P_t H^\top + R)

    by the Kalman filter (:func:`kalman_filter`); the states :math:`z_{1:T}` of the
    module-level process are recovered afterwards, per draw, by :func:`ffbs`.

    Parameters
    ----------
    y : ArrayLike or None
        Observations ``(T, d)`` (or ``(T,)`` when ``d == 1``); ``NaN`` = missing.
        ``None`` draws them (site ``y``).
    ssm : LinearGaussianSSM or callable
        Fixed parameters, or a function of no arguments that samples the parameters
        :math:`\theta` with ``numpyro.sample`` and returns them (e.g.
        :func:`local_level_prior`).
    num_timesteps : int, optional
        :math:`T`, required when ``y`` is ``None``.
    """
    T = _num_timesteps(y, num_timesteps)
    ssm = _resolve(ssm)
    _, d = _check_ssm(ssm)
    univariate = (d == 1) if y is None else (np.ndim(y) == 1)
    if y is not None:
        _check_observations(y, d)
    with numpyro.plate("time", T):
        numpyro.sample("y", _MarginalObservations(ssm, T, univariate), obs=y)


def local_level_prior(
    *,
    level_prior_scale: float = 1.0,
    observation_prior_scale: float = 1.0,
    initial_mean: float = 0.0,
    initial_variance: float = 1e7,
) -> LinearGaussianSSM:
    r"""Sample local-level parameters (for use inside a model) and build the model.

    .. math::

        \sigma_\xi \sim \mathrm{HalfNormal}(\text{level\_prior\_scale}), \quad
        \sigma_\varepsilon \sim \mathrm{HalfNormal}(\text{observation\_prior\_scale}),

    sites ``level_scale`` and ``observation_scale``; returns
    ``local_level(level_scale**2, observation_scale**2, ...)``.
    """
    level = numpyro.sample("level_scale", dist.HalfNormal(level_prior_scale))
    observation = numpyro.sample(
        "observation_scale", dist.HalfNormal(observation_prior_scale)
    )
    return local_level(
        level**2,
        observation**2,
        initial_mean=initial_mean,
        initial_variance=initial_variance,
    )


@allow_missing("y")
def local_level_model(
    y: ArrayLike | None = None,
    *,
    num_timesteps: int | None = None,
    level_prior_scale: float = 1.0,
    observation_prior_scale: float = 1.0,
    initial_mean: float = 0.0,
    initial_variance: float = 1e7,
) -> None:
    r"""Local-level model with the level integrated out by the Kalman filter.

    .. math::

        \sigma_\xi \sim \mathrm{HalfNormal}(s_\xi), \quad
        \sigma_\varepsilon \sim \mathrm{HalfNormal}(s_\varepsilon), \quad
        \mu_1 \sim \mathcal{N}(\mu_0, v_0),

        \mu_t = \mu_{t-1} + \sigma_\xi \xi_t, \quad
        y_t = \mu_t + \sigma_\varepsilon \varepsilon_t, \quad
        \xi_t, \varepsilon_t \sim \mathcal{N}(0, 1).

    Scale the priors to the data (e.g. ``level_prior_scale=100`` for the Nile).
    Arguments as in :func:`model` and :func:`local_level_prior`.
    """
    prior = dict(
        level_prior_scale=level_prior_scale,
        observation_prior_scale=observation_prior_scale,
        initial_mean=initial_mean,
        initial_variance=initial_variance,
    )
    model(y, ssm=lambda: local_level_prior(**prior), num_timesteps=num_timesteps)


@allow_missing("y")
def latent_state_model(
    y: ArrayLike | None = None,
    *,
    ssm: LinearGaussianSSM | Callable[[], LinearGaussianSSM],
    num_timesteps: int | None = None,
) -> None:
    r"""Linear-Gaussian state-space model with explicit, non-centred latent states.

    .. math::

        e_t \sim \mathcal{N}(0, I_m), \quad
        z_1 = m_0 + L_0 e_1, \quad z_t = F z_{t-1} + L_Q e_t, \quad
        y_t \sim \mathcal{N}(H z_t, R),

    with :math:`L_0 L_0^\top = P_0` and :math:`L_Q L_Q^\top = Q`: site
    ``innovations`` ``(T, m)``, deterministic ``states`` ``(T, m)``, observed ``y``.
    :math:`R` must be positive definite. Missing entries of ``y`` are masked (they
    contribute zero) and recorded as 0. Arguments as in :func:`model`.
    """
    T = _num_timesteps(y, num_timesteps)
    ssm = _resolve(ssm)
    m, d = _check_ssm(ssm)
    with numpyro.plate("time", T):
        innovations = numpyro.sample(
            "innovations", dist.Normal(0.0, 1.0).expand([T, m]).to_event(1)
        )
    states = numpyro.deterministic("states", _propagate(ssm, innovations))
    if y is None:
        y_clean, loc = None, states @ ssm.observation_matrix.T
        cov = jnp.broadcast_to(ssm.observation_cov, (T, d, d))
        univariate = d == 1
    else:
        univariate = np.ndim(y) == 1
        H, cov, y_clean = _mask(ssm, _check_observations(y, d))
        loc = (H @ states[:, :, None])[..., 0]
    with numpyro.plate("time", T):
        if univariate:
            y_dist = dist.Normal(loc[:, 0], jnp.sqrt(cov[:, 0, 0]))
            y_clean = None if y_clean is None else y_clean[:, 0]
        else:
            y_dist = dist.MultivariateNormal(loc, covariance_matrix=cov)
        numpyro.sample("y", y_dist, obs=y_clean)


@allow_missing("y")
def stochastic_volatility_model(
    y: ArrayLike | None = None,
    *,
    num_timesteps: int | None = None,
    mu_prior_scale: float = 5.0,
    sigma_prior_scale: float = 1.0,
) -> None:
    r"""Stochastic volatility: a nonlinear state-space model, states explicit.

    .. math::

        \mu \sim \mathcal{N}(0, s_\mu), \quad \tfrac{\phi + 1}{2} \sim
        \mathrm{Beta}(20, 1.5), \quad \sigma \sim \mathrm{HalfNormal}(s_\sigma),

        h_1 = \mu + \frac{\sigma}{\sqrt{1 - \phi^2}} e_1, \quad
        h_t = \mu + \phi (h_{t-1} - \mu) + \sigma e_t, \quad e_t \sim \mathcal{N}(0,1),

        y_t \sim \mathcal{N}(0, \exp(h_t / 2)^2).

    Non-centred: site ``innovations`` :math:`e_{1:T}`, deterministic
    ``log_volatility`` :math:`h_{1:T}`; sites ``mu``, ``phi``, ``sigma``. ``y`` has
    shape ``(T,)``; ``NaN`` entries are masked and recorded as 0.

    References
    ----------
    Kim, Shephard & Chib (1998), section 2 (the ``phi`` prior).
    """
    T = _num_timesteps(y, num_timesteps)
    if y is not None:
        y = _check_observations(y, 1)[:, 0]
    mu = numpyro.sample("mu", dist.Normal(0.0, mu_prior_scale))
    phi = numpyro.sample(
        "phi",
        dist.TransformedDistribution(
            dist.Beta(20.0, 1.5), dist.transforms.AffineTransform(-1.0, 2.0)
        ),
    )
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_prior_scale))
    with numpyro.plate("time", T):
        innovations = numpyro.sample("innovations", dist.Normal(0.0, 1.0))

    def step(previous, eps):
        h = mu + phi * (previous - mu) + sigma * eps
        return h, h

    first = mu + sigma / jnp.sqrt(1 - phi**2) * innovations[0]
    rest = jax.lax.scan(step, first, innovations[1:])[1]
    h = numpyro.deterministic("log_volatility", jnp.concatenate([first[None], rest]))
    observed = True if y is None else ~jnp.isnan(y)
    y_clean = None if y is None else jnp.where(observed, y, 0.0)
    with numpyro.plate("time", T), numpyro.handlers.mask(mask=observed):
        numpyro.sample("y", dist.Normal(0.0, jnp.exp(h / 2)), obs=y_clean)
