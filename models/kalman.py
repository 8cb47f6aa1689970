r"""Kalman filtering, smoothing, path sampling and forecasting for linear-Gaussian SSMs.

The state-space model of seed ``003_02afaf35b30b64a9.txt``, Example 3.3, links latent
states :math:`z_t \in \mathbb{R}^m` and observations :math:`y_t \in \mathbb{R}^d`;
in its linear-Gaussian case

.. math::

    z_1 \sim \mathcal{N}(m_0, P_0), \quad
    z_t = F z_{t-1} + \epsilon_t, \quad \epsilon_t \sim \mathcal{N}(0, Q), \quad
    y_t = H z_t + \eta_t, \quad \eta_t \sim \mathcal{N}(0, R),

the posterior over states is tractable (seed 003, Example 3.3): every step of the
Kalman filter and of the Rauch-Tung-Striebel smoother is the Gaussian conditioning
formula of seed ``000_7a39c8fab34c037d.txt``, section 5 ("The Multivariate Gaussian",
conditional of a multivariate Gaussian),
:math:`\mu_{1|2} = \mu_1 + \Sigma_{12}\Sigma_{22}^{-1}(x_2 - \mu_2)`.

This module holds the parameters (:class:`LinearGaussianSSM`) and the exact
algorithms on them: :func:`kalman_filter` (sequential) and
:func:`parallel_kalman_filter` (:math:`O(\log T)` depth), :func:`rts_smoother`,
:func:`ffbs` (one joint draw of the states) and :func:`forecast`. All are pure, jitted
and vmappable over parameter draws. Missing observations are ``NaN``: the filter skips
their update step. The structures (local level, trend, seasonal) are built in
:mod:`numpyro_pgm.models.structural`; the NumPyro models in
:mod:`numpyro_pgm.models.state_space`, which re-exports this module's names.

References
----------
.. [1] Durbin, J. & Koopman, S. J. (2012). *Time Series Analysis by State Space
   Methods*, 2nd ed. Oxford University Press.
.. [2] Särkkä, S. (2013). *Bayesian Filtering and Smoothing*. Cambridge University
   Press.
.. [3] Särkkä, S. & García-Fernández, Á. F. (2021). Temporal parallelization of
   Bayesian smoothers. *IEEE Transactions on Automatic Control*, 66(1), 299-306.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.typing import ArrayLike

from ._ssm_checks import checked

__all__ = [
    "FilterResult",
    "ForecastResult",
    "LinearGaussianSSM",
    "SmootherResult",
    "ffbs",
    "forecast",
    "kalman_filter",
    "parallel_kalman_filter",
    "rts_smoother",
]

Array = jax.Array


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


# ------------------------------------------------------------------------ filtering


def _mask(ssm: LinearGaussianSSM, y: Array) -> tuple[Array, Array, Array, Array]:
    r"""Per-time ``H_t, R_t, y_t`` in which a missing component has no effect.

    A missing component becomes a dummy observation 0 of a zero row of ``H`` with
    variance :math:`1/(2\pi)`: its density is one, its gain is zero, and no NaN
    enters the arithmetic (so gradients stay finite). The mask of observed
    components is returned too, so that :func:`_update` leaves the dummies out of
    the log density exactly (a step with nothing observed contributes 0.0).
    """
    observed = ~jnp.isnan(y)
    y_clean = jnp.where(observed, y, 0.0)
    H = jnp.where(observed[:, :, None], ssm.observation_matrix[None], 0.0)
    both = observed[:, :, None] & observed[:, None, :]
    dummy = jnp.eye(y.shape[1], dtype=y.dtype)[None] / (2 * jnp.pi)
    R = jnp.where(both, ssm.observation_cov[None], dummy)
    return H, R, y_clean, observed


def _update(mean, cov, H, R, y, observed):
    """Condition :math:`N(mean, cov)` on :math:`y = H z + N(0, R)` (seed 000, §5)."""
    if H.shape[0] == 1:
        return _update_univariate(mean, cov, H[0], R[0, 0], y[0], observed[0])
    S = H @ cov @ H.T + R
    chol = jnp.linalg.cholesky(S)
    gain = cho_solve((chol, True), H @ cov).T
    residual = y - H @ mean
    joseph = jnp.eye(mean.shape[0], dtype=mean.dtype) - gain @ H
    cov = joseph @ cov @ joseph.T + gain @ R @ gain.T
    white = solve_triangular(chol, residual, lower=True)
    # Dummy components (missing) have white = 0 exactly; drop their log-det terms.
    log_density = (
        -0.5 * white @ white
        - jnp.where(observed, jnp.log(jnp.diag(chol)), 0.0).sum()
        - 0.5 * observed.sum() * jnp.log(2 * jnp.pi)
    )
    return mean + gain @ residual, 0.5 * (cov + cov.T), log_density


def _update_univariate(mean, cov, h, r, y, observed):
    """:func:`_update` for one observation: scalar algebra, no LAPACK call.

    In a ``lax.scan`` on CPU a Cholesky factorisation and two triangular solves of
    1 x 1 matrices cost far more than the arithmetic; this path makes the gradient
    of a univariate filter about an order of magnitude cheaper.
    """
    cov_h = cov @ h
    variance = h @ cov_h + r
    gain = cov_h / variance
    residual = y - h @ mean
    joseph = jnp.eye(mean.shape[0], dtype=mean.dtype) - jnp.outer(gain, h)
    cov = joseph @ cov @ joseph.T + r * jnp.outer(gain, gain)
    log_density = jnp.where(
        observed,
        -0.5 * (residual**2 / variance + jnp.log(2 * jnp.pi * variance)),
        0.0,
    )
    return mean + gain * residual, 0.5 * (cov + cov.T), log_density


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
    return _filter(ssm, checked(ssm, y))


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
    return _parallel_filter(ssm, checked(ssm, y))


@jax.jit
def _parallel_filter(ssm: LinearGaussianSSM, y: Array) -> FilterResult:
    F, Q = ssm.transition_matrix, ssm.transition_cov
    H, R, y_clean, observed = _mask(ssm, y)
    elements = jax.vmap(_element, in_axes=(None, None, 0, 0, 0))(F, Q, H, R, y_clean)
    m0, P0 = ssm.initial_mean, ssm.initial_cov
    first_mean, first_cov, _ = _update(m0, P0, H[0], R[0], y_clean[0], observed[0])
    zeros = jnp.zeros_like(P0)
    first = (zeros, first_mean, first_cov, jnp.zeros_like(m0), zeros)
    elements = tuple(e.at[0].set(f) for e, f in zip(elements, first, strict=True))
    _, means, covs, _, _ = jax.lax.associative_scan(jax.vmap(_compose), elements)
    pred_means = jnp.concatenate([m0[None], means[:-1] @ F.T])
    pred_covs = jnp.concatenate([P0[None], F @ covs[:-1] @ F.T + Q[None]])
    _, _, terms = jax.vmap(_update)(pred_means, pred_covs, H, R, y_clean, observed)
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
    return _smooth(ssm, checked(ssm, y))


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

    >>> from numpyro_pgm.models.structural import local_level
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
    return _ffbs(rng_key, ssm, checked(ssm, y))


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
    return _forecast(ssm, checked(ssm, y), horizon)


@partial(jax.jit, static_argnames="horizon")
def _forecast(ssm: LinearGaussianSSM, y: Array, horizon: int) -> ForecastResult:
    result = _filter(ssm, y)
    F, H = ssm.transition_matrix, ssm.observation_matrix

    def step(carry, _):
        mean, cov = F @ carry[0], F @ carry[1] @ F.T + ssm.transition_cov
        return (mean, cov), (H @ mean, H @ cov @ H.T + ssm.observation_cov, mean, cov)

    init = (result.filtered_means[-1], result.filtered_covs[-1])
    return ForecastResult(*jax.lax.scan(step, init, length=horizon)[1])
