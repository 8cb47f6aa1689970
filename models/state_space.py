r"""Linear-Gaussian state-space models in NumPyro, with the states integrated out.

The state-space model of seed ``003_02afaf35b30b64a9.txt``, Example 3.3, links latent
states :math:`z_t \in \mathbb{R}^m` and observations :math:`y_t \in \mathbb{R}^d`:

.. math::

    \theta \sim p(\theta), \quad
    z_1 \sim \mathcal{N}(m_0, P_0), \quad
    z_t = F z_{t-1} + \epsilon_t, \quad \epsilon_t \sim \mathcal{N}(0, Q), \quad
    y_t = H z_t + \eta_t, \quad \eta_t \sim \mathcal{N}(0, R),

with :math:`(F, H, Q, R, m_0, P_0)` built from the parameters :math:`\theta`. In this
linear-Gaussian case the states can be integrated out exactly (seed 003, Example
3.3; every Kalman step is the Gaussian conditioning of seed
``000_7a39c8fab34c037d.txt``, section 5), so NUTS only has to explore
:math:`\theta`, and the states are drawn afterwards, per posterior draw, by
forward-filtering backward-sampling.

Models are NumPyro functions, generative when ``y`` is ``None``, with the time axis in
a plate named ``time``:

- :func:`model` integrates the states out: its ``y`` site's log density is the Kalman
  filter's, one term :math:`\log p(y_t \mid y_{1:t-1})` per time step.
- :func:`local_level_model` is :func:`model` for the local level with half-normal
  priors on the two scales (:func:`local_level_prior`).
- :func:`latent_state_model` is the same model with explicit, non-centred states.
- :func:`stochastic_volatility_model` is a nonlinear model of the seed's form.

Missing observations are ``NaN`` (the models are marked with
:func:`numpyro_pgm.allow_missing`): the filter skips their update step.

This module is the one place to import the state-space zoo from: it re-exports the
algorithms of :mod:`numpyro_pgm.models.kalman` (:func:`kalman_filter`,
:func:`parallel_kalman_filter`, :func:`rts_smoother`, :func:`ffbs`,
:func:`forecast`) and the builders of :mod:`numpyro_pgm.models.structural`
(:func:`local_level`, :func:`local_linear_trend`, :func:`seasonal`,
:func:`trigonometric_seasonal`, :func:`combine`), where they are defined.

Examples
--------
>>> import jax, numpyro
>>> from numpyro_pgm.models import state_space
>>> ssm = state_space.local_level(1.0, 2.0)
>>> y = state_space.simulate(jax.random.key(0), ssm, num_timesteps=20)["y"]
>>> state_space.kalman_filter(ssm, y).filtered_means.shape
(20, 1)

References
----------
.. [1] Durbin, J. & Koopman, S. J. (2012). *Time Series Analysis by State Space
   Methods*, 2nd ed. Oxford University Press.
.. [2] Frühwirth-Schnatter, S. (1994). Data augmentation and dynamic linear models.
   *Journal of Time Series Analysis*, 15(2), 183-202.
.. [3] Kim, S., Shephard, N. & Chib, S. (1998). Stochastic volatility: likelihood
   inference and comparison with ARCH models. *Review of Economic Studies*, 65(3).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike

from numpyro_pgm import allow_missing

from ._ssm_checks import check_observations, check_positive_definite, check_ssm
from .kalman import (
    FilterResult,
    ForecastResult,
    LinearGaussianSSM,
    SmootherResult,
    _filter,
    _mask,
    ffbs,
    forecast,
    kalman_filter,
    parallel_kalman_filter,
    rts_smoother,
)
from .structural import (
    combine,
    local_level,
    local_linear_trend,
    seasonal,
    trigonometric_seasonal,
)

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
    "trigonometric_seasonal",
]

Array = jax.Array


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
    r"""Draw states and observations by ancestral sampling.

    .. math::

        z_1 \sim \mathcal{N}(m_0, P_0), \quad
        z_t \sim \mathcal{N}(F z_{t-1}, Q), \quad
        y_t \sim \mathcal{N}(H z_t, R).

    Parameters
    ----------
    rng_key : Array
        A JAX PRNG key.
    ssm : LinearGaussianSSM
        Model parameters (covariances may be singular, e.g. zero noise).
    num_timesteps : int
        :math:`T`.

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
    m, d = check_ssm(ssm)
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
    _, d = check_ssm(ssm)
    univariate = (d == 1) if y is None else (np.ndim(y) == 1)
    if y is not None:
        check_observations(y, d)
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
    m, d = check_ssm(ssm)
    check_positive_definite(
        "observation_cov", ssm.observation_cov, "in latent_state_model"
    )
    y_checked = None if y is None else check_observations(y, d)
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
        H, cov, y_clean, _ = _mask(ssm, y_checked)
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
    shape ``(T,)``; ``NaN`` entries are masked and recorded as 0. ``phi``'s support
    is :math:`(-1, 1)`, so NUTS and SVI move :math:`\operatorname{logit}((\phi +
    1) / 2)` and never leave the stationary region.

    References
    ----------
    Kim, Shephard & Chib (1998), section 2 (the ``phi`` prior).
    """
    T = _num_timesteps(y, num_timesteps)
    if y is not None:
        y = check_observations(y, 1)[:, 0]
    mu = numpyro.sample("mu", dist.Normal(0.0, mu_prior_scale))
    # The domain makes the support (-1, 1): with NumPyro's default (real) domain the
    # support is all of R, so NUTS and SVI move phi itself, unconstrained, and a
    # step or guide draw past 1 gives NaN (no stationary sd, no Beta density).
    to_phi = dist.transforms.AffineTransform(
        -1.0, 2.0, domain=dist.constraints.unit_interval
    )
    phi = numpyro.sample(
        "phi", dist.TransformedDistribution(dist.Beta(20.0, 1.5), to_phi)
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
