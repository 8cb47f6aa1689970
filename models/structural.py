r"""Structural time-series components as linear-Gaussian state-space models.

Each builder returns a :class:`~numpyro_pgm.models.kalman.LinearGaussianSSM` for one
component of the basic structural model of Harvey (1989) and Durbin & Koopman (2012,
section 3.2); :func:`combine` stacks components that describe the same observations,

.. math::

    y_t = \mu_t + \gamma_t + \varepsilon_t, \quad
    \varepsilon_t \sim \mathcal{N}(0, \sigma^2_\varepsilon),

with a level (or a level and a slope) :math:`\mu_t` and a seasonal effect
:math:`\gamma_t` (dummy-variable or trigonometric). These are linear-Gaussian
instances of the state-space model of seed ``003_02afaf35b30b64a9.txt``, Example
3.3; the filter, smoother and sampler that run on them are in
:mod:`numpyro_pgm.models.kalman`. Variances are arguments, so the builders can be
called inside a NumPyro model with sampled parameters (they are differentiable and
traceable); concrete values are checked (non-negative variances).

Initial states are diffuse but proper: :math:`P_0 = 10^7 I` by default (statsmodels'
"approximate diffuse" initialisation uses :math:`10^6`), so the first observations'
log-likelihood terms are nearly flat; drop them to reproduce exact-diffuse maximum
likelihood (Durbin & Koopman, section 7.2). For data far from zero in single
precision, centre the data or pass a data-scaled ``initial_variance``.

References
----------
.. [1] Durbin, J. & Koopman, S. J. (2012). *Time Series Analysis by State Space
   Methods*, 2nd ed. Oxford University Press, section 3.2.
.. [2] Harvey, A. C. (1989). *Forecasting, Structural Time Series Models and the
   Kalman Filter*. Cambridge University Press, section 2.3.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import block_diag
from jax.typing import ArrayLike

from ._ssm_checks import check_ssm, variance
from .kalman import LinearGaussianSSM

__all__ = [
    "combine",
    "local_level",
    "local_linear_trend",
    "seasonal",
    "trigonometric_seasonal",
]

Array = jax.Array


def _ssm(F, H, Q, R, m0, P0) -> LinearGaussianSSM:
    arrays = [jnp.asarray(a) for a in (F, H, Q, R, m0, P0)]
    dtype = jnp.result_type(*arrays, float)
    ssm = LinearGaussianSSM(*(a.astype(dtype) for a in arrays))
    check_ssm(ssm)
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
    q = variance("level_variance", level_variance)
    r = variance("observation_variance", observation_variance)
    p0 = variance("initial_variance", initial_variance)
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
            variance("level_variance", level_variance),
            variance("slope_variance", slope_variance),
        ]
    )
    r = variance("observation_variance", observation_variance)
    p0 = variance("initial_variance", initial_variance)
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
    q = variance("seasonal_variance", seasonal_variance)
    r = variance("observation_variance", observation_variance)
    p0 = variance("initial_variance", initial_variance)
    m = period - 1
    F = jnp.zeros((m, m)).at[0].set(-1.0).at[1:, :-1].set(jnp.eye(m - 1))
    H = jnp.zeros((1, m)).at[0, 0].set(1.0)
    Q = jnp.zeros((m, m)).at[0, 0].set(q)
    return _ssm(F, H, Q, jnp.reshape(r, (1, 1)), jnp.zeros(m), p0 * jnp.eye(m))


def _rotation(angle: float) -> np.ndarray:
    """Return the block of one harmonic: a rotation, or -1 at the Nyquist frequency."""
    if math.isclose(angle, math.pi):
        return np.array([[-1.0]])
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s], [-s, c]])


def trigonometric_seasonal(
    period: float,
    num_harmonics: int,
    seasonal_variance: ArrayLike,
    observation_variance: ArrayLike = 0.0,
    *,
    initial_variance: ArrayLike = 1e7,
) -> LinearGaussianSSM:
    r"""Trigonometric seasonal component: ``num_harmonics`` stochastic harmonics.

    .. math::

        \gamma_t = \sum_{j=1}^{K} \gamma_{j,t}, \quad
        \begin{pmatrix} \gamma_{j,t+1} \\ \gamma^*_{j,t+1} \end{pmatrix} =
        \begin{pmatrix} \cos\lambda_j & \sin\lambda_j \\
        -\sin\lambda_j & \cos\lambda_j \end{pmatrix}
        \begin{pmatrix} \gamma_{j,t} \\ \gamma^*_{j,t} \end{pmatrix} +
        \begin{pmatrix} \omega_{j,t} \\ \omega^*_{j,t} \end{pmatrix}, \quad
        \lambda_j = \frac{2 \pi j}{s},

    with :math:`\omega_{j,t}, \omega^*_{j,t} \sim \mathcal{N}(0, \sigma^2_\omega)`
    independent, :math:`s` = ``period`` and :math:`K` = ``num_harmonics``. Without
    noise each harmonic is a sinusoid of period :math:`s / j`, so the component is a
    smooth cycle of period :math:`s`; with :math:`K = s / 2` (even :math:`s`) it spans
    the same zero-sum periodic sequences as :func:`seasonal`, the last harmonic
    (:math:`\lambda = \pi`) having a single state. Fewer harmonics give a smoother
    seasonal pattern with far fewer states (:math:`2K` instead of :math:`s - 1`), and
    the period need not be an integer (weekly data with a yearly cycle:
    ``period=365.25 / 7``).

    Parameters
    ----------
    period : float
        :math:`s`, the length of the cycle in time steps (> 2, or 2 with one
        harmonic).
    num_harmonics : int
        :math:`K`, between 1 and :math:`\lfloor s / 2 \rfloor`.
    seasonal_variance : ArrayLike
        :math:`\sigma^2_\omega`, the variance of every harmonic's disturbances.
    observation_variance : ArrayLike, default 0.0
        :math:`\sigma^2_\varepsilon`.
    initial_variance : ArrayLike, default 1e7
        Prior variance of every initial state (mean zero).

    Returns
    -------
    LinearGaussianSSM
        :math:`2K` states (:math:`2K - 1` when :math:`K = s / 2`), one observation;
        the state is :math:`(\gamma_{1,t}, \gamma^*_{1,t}, \dots, \gamma_{K,t},
        \gamma^*_{K,t})`.

    Examples
    --------
    >>> trigonometric_seasonal(365.25 / 7, 3, 0.01).transition_matrix.shape
    (6, 6)
    >>> trigonometric_seasonal(12, 6, 0.01).transition_matrix.shape
    (11, 11)

    References
    ----------
    Durbin & Koopman (2012), section 3.2.1; Harvey (1989), section 2.3.4.
    """
    if (
        isinstance(period, bool)
        or not isinstance(period, int | float | np.integer | np.floating)
        or not period >= 2
    ):
        raise ValueError(
            f"period must be a number >= 2 (time steps per cycle, not necessarily an "
            f"integer); got {period!r}. Use e.g. period=365.25 / 7 for weekly data "
            "with a yearly cycle."
        )
    most = math.floor(period / 2)
    if (
        isinstance(num_harmonics, bool)
        or not isinstance(num_harmonics, int | np.integer)
        or not 1 <= num_harmonics <= most
    ):
        raise ValueError(
            f"num_harmonics must be an integer between 1 and floor(period / 2) = "
            f"{most} for period={period!r}; got {num_harmonics!r}. Higher harmonics "
            "repeat lower ones (aliasing); use fewer for a smoother seasonal pattern."
        )
    q = variance("seasonal_variance", seasonal_variance)
    r = variance("observation_variance", observation_variance)
    p0 = variance("initial_variance", initial_variance)
    rotations = [
        _rotation(2 * math.pi * j / period) for j in range(1, num_harmonics + 1)
    ]
    F = jnp.asarray(block_diag(*(jnp.asarray(b) for b in rotations)))
    H = np.concatenate([np.eye(1, len(b)) for b in rotations], axis=1)
    m = F.shape[0]
    return _ssm(
        F, H, q * jnp.eye(m), jnp.reshape(r, (1, 1)), jnp.zeros(m), p0 * jnp.eye(m)
    )


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
    d = {check_ssm(c)[1] for c in components}
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
