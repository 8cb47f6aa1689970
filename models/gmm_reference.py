r"""Reference algorithms for Gaussian mixtures: EM and CAVI.

* :func:`em` -- expectation maximisation for the maximum-likelihood (or MAP)
  mixture :math:`p(x) = \sum_k \pi_k \mathcal{N}(x; \mu_k, \Sigma_k)` with full
  per-component covariances (seed ``003_02afaf35b30b64a9.txt``, §2.3 and §2.5),
  with the degeneracy remedies of Remark 2.10.
* :func:`cavi` -- coordinate ascent variational inference for the Bayesian mixture
  :func:`numpyro_pgm.models.gmm.model` with known covariance (Example 3.7,
  generalised to :math:`K` components in :math:`d` dimensions, with the mean-field
  family of Example 3.5).

Both are jitted ``lax.while_loop`` iterations and return their objective per
iteration, which the seed's monotonicity arguments (eq. (2.37) for EM, eq. (3.12)
for CAVI) say never decreases.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §2.3-§2.5, Remark 2.10, Examples 3.5 and 3.7.
.. [2] C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer (2006),
   §9.2 and §10.2.
.. [3] S. Ingrassia, "A likelihood-based constrained algorithm for multivariate
   normal mixture models", Statistical Methods and Applications 13 (2004).
"""

import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, multigammaln, xlogy
from jax.typing import ArrayLike

from ._gmm_common import (
    _check_sizes,
    _gaussian_log_density,
    _hyperparameters,
    _kmeans_plus_plus,
)
from .gmm_gibbs import _MODEL_DEFAULTS

__all__ = ["CAVIResult", "EMPrior", "EMResult", "MixtureParams", "cavi", "em"]

Array = jax.Array

MSG_NON_FINITE = (
    "The EM objective became non-finite at iteration {iteration}: a component "
    "collapsed onto too few points (seed Remark 2.10). Pass covariance_floor > 0 or "
    "a prior=EMPrior(...), or use fewer components."
)


class MixtureParams(NamedTuple):
    r"""Parameters of a Gaussian mixture with full covariances.

    Attributes
    ----------
    weights : Array of shape (num_components,)
        Mixing weights :math:`\pi`, summing to one.
    means : Array of shape (num_components, dim)
        Component means :math:`\mu_k`.
    covs : Array of shape (num_components, dim, dim)
        Component covariances :math:`\Sigma_k`.
    """

    weights: Array
    means: Array
    covs: Array


class EMPrior(NamedTuple):
    r"""Conjugate prior that turns :func:`em` into MAP estimation.

    .. math::

        \pi \sim \mathrm{Dirichlet}(\alpha), \quad
        \Sigma_k \sim \mathcal{W}^{-1}(\Psi_0, \nu_0), \quad
        \mu_k \mid \Sigma_k \sim \mathcal{N}(m_0, \Sigma_k / \kappa_0).

    Attributes
    ----------
    concentration : float or array_like of shape (num_components,)
        Dirichlet :math:`\alpha`, at least 1 so that the MAP weights exist.
    mean : float or array_like of shape (dim,)
        Prior mean :math:`m_0` of the component means.
    mean_precision : float
        :math:`\kappa_0 > 0`, in units of pseudo-observations.
    df : float, optional
        Inverse-Wishart degrees of freedom :math:`\nu_0 > d - 1`; default ``d + 2``.
    scale : float or array_like of shape (dim, dim)
        Inverse-Wishart scale :math:`\Psi_0` (a scalar means ``scale * I``).
    """

    concentration: ArrayLike = 1.0
    mean: ArrayLike = 0.0
    mean_precision: float = 0.01
    df: float | None = None
    scale: ArrayLike = 1.0


class EMResult(NamedTuple):
    r"""Output of :func:`em`.

    Attributes
    ----------
    params : MixtureParams
        The final estimate.
    responsibilities : Array of shape (num_points, num_components)
        :math:`\gamma(z_{nk})` at ``params`` (seed eq. (2.28)).
    log_likelihood : Array of shape (num_iterations + 1,)
        :math:`\log p(x \mid \theta_t)` at the initial and every later iterate.
    objective : Array of shape (num_iterations + 1,)
        The maximised objective: ``log_likelihood`` for ML, plus
        :math:`\log p(\theta_t)` for MAP. Non-decreasing (seed eq. (2.37)).
    converged : bool
        Whether the change of ``objective / num_points`` fell below ``tol``.
    num_iterations : int
        Number of EM iterations run.
    """

    params: MixtureParams
    responsibilities: Array
    log_likelihood: Array
    objective: Array
    converged: bool
    num_iterations: int


class CAVIResult(NamedTuple):
    r"""Output of :func:`cavi`: the mean-field posterior and the ELBO.

    Attributes
    ----------
    pi_concentration : Array of shape (num_components,)
        :math:`q(\pi) = \mathrm{Dirichlet}(\hat\alpha)`.
    mu_mean, mu_cov : Array of shape (num_components, dim) and (..., dim, dim)
        :math:`q(\mu_k) = \mathcal{N}(m_k, S_k)`.
    z_probs : Array of shape (num_points, num_components)
        :math:`q(z_n) = \mathrm{Categorical}(r_n)`.
    elbo : Array of shape (num_iterations,)
        The ELBO after every sweep, in closed form; non-decreasing.
    converged : bool
        Whether the change of ``elbo / num_points`` fell below ``tol``.
    num_iterations : int
        Number of sweeps run.
    """

    pi_concentration: Array
    mu_mean: Array
    mu_cov: Array
    z_probs: Array
    elbo: Array
    converged: bool
    num_iterations: int


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


def _clip_eigenvalues(covs: Array, floor: float) -> Array:
    """Project onto ``{cov >= floor * I}``: the constrained M-step maximiser."""
    eigenvalues, eigenvectors = jnp.linalg.eigh(covs)
    clipped = jnp.maximum(eigenvalues, floor)
    return (eigenvectors * clipped[..., None, :]) @ jnp.swapaxes(eigenvectors, -1, -2)


def _e_step(x: Array, params: MixtureParams):
    log_joint = jnp.log(params.weights)[None, :] + _gaussian_log_density(
        x, params.means, jnp.linalg.cholesky(params.covs)
    )
    log_marginal = jax.nn.logsumexp(log_joint, axis=-1)
    return jnp.exp(log_joint - log_marginal[:, None]), jnp.sum(log_marginal)


def _m_step(x: Array, resp: Array, floor: float, prior) -> MixtureParams:
    num_points, dim = x.shape
    counts = resp.sum(0) + 10 * jnp.finfo(x.dtype).eps
    sums = resp.T @ x
    if prior is None:
        weights = counts / counts.sum()
        means = sums / counts[:, None]
    else:
        concentration, mean, mean_precision, df, scale = prior
        weights = (counts + concentration - 1) / (
            counts.sum() + concentration.sum() - counts.shape[0]
        )
        means = (mean_precision * mean[None, :] + sums) / (
            mean_precision + counts[:, None]
        )
    diff = x[None, :, :] - means[:, None, :]
    scatter = jnp.einsum("nk,kni,knj->kij", resp, diff, diff)
    if prior is None:
        covs = scatter / counts[:, None, None]
    else:
        shift = means - mean[None, :]
        shift_outer = mean_precision * shift[:, :, None] * shift[:, None, :]
        denominator = (df + counts + dim + 2)[:, None, None]
        covs = (scale[None] + scatter + shift_outer) / denominator
    if floor > 0:
        covs = _clip_eigenvalues(covs, floor)
    return MixtureParams(weights, means, covs)


def _log_prior(params: MixtureParams, prior) -> Array:
    """Log density of the Dirichlet and Normal-inverse-Wishart prior at ``params``."""
    concentration, mean, mean_precision, df, scale = prior
    dim = params.means.shape[-1]
    log_dirichlet = (
        gammaln(concentration.sum())
        - gammaln(concentration).sum()
        + xlogy(concentration - 1, params.weights).sum()
    )
    chol = jnp.linalg.cholesky(params.covs)
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
    eye = jnp.broadcast_to(jnp.eye(dim, dtype=scale.dtype), params.covs.shape)
    inverse = jax.scipy.linalg.cho_solve((chol, True), eye)
    trace = jnp.einsum("ij,kji->k", scale, inverse)
    log_inv_wishart = (
        0.5 * df * jnp.linalg.slogdet(scale)[1]
        - 0.5 * df * dim * math.log(2.0)
        - multigammaln(0.5 * df, dim)
        - 0.5 * (df + dim + 1) * log_det
        - 0.5 * trace
    )
    shift = params.means - mean[None, :]
    maha = mean_precision * jnp.einsum("ki,kij,kj->k", shift, inverse, shift)
    log_normal = -0.5 * (
        dim * math.log(2 * math.pi) + log_det - dim * jnp.log(mean_precision) + maha
    )
    return log_dirichlet + jnp.sum(log_inv_wishart + log_normal)


def _prior_arrays(prior: EMPrior, num_components: int, dim: int, dtype):
    concentration = jnp.broadcast_to(
        jnp.asarray(prior.concentration, dtype), (num_components,)
    )
    mean = jnp.broadcast_to(jnp.asarray(prior.mean, dtype), (dim,))
    df = dim + 2.0 if prior.df is None else float(prior.df)
    scale = jnp.asarray(prior.scale, dtype)
    scale = scale * jnp.eye(dim, dtype=dtype) if scale.ndim == 0 else scale
    checks = (
        ("prior.concentration", bool(np.all(np.asarray(concentration) >= 1)), ">= 1"),
        ("prior.mean_precision", prior.mean_precision > 0, "> 0"),
        ("prior.df", df > dim - 1, f"> dim - 1 = {dim - 1}"),
        (
            "prior.scale",
            scale.shape == (dim, dim)
            and bool(np.all(np.linalg.eigvalsh(np.asarray(scale)) > 0)),
            f"a positive scalar or a ({dim}, {dim}) positive definite matrix",
        ),
    )
    for name, ok, allowed in checks:
        if not ok:
            raise ValueError(
                f"{name} must be {allowed}; got {getattr(prior, name[6:])!r}. Pass "
                "EMPrior() for the defaults, or prior=None for maximum likelihood."
            )
    return concentration, mean, jnp.asarray(prior.mean_precision, dtype), df, scale


def em(
    rng_key: Array,
    x: ArrayLike,
    *,
    num_components: int,
    init: MixtureParams | None = None,
    num_iterations: int = 500,
    tol: float = 1e-6,
    covariance_floor: float = 1e-6,
    prior: EMPrior | None = None,
) -> EMResult:
    r"""Fit a Gaussian mixture by expectation maximisation (seed §2.3).

    Alternates the E-step :math:`\gamma_{nk} \propto \pi_k \mathcal{N}(x_n; \mu_k,
    \Sigma_k)` and the M-step (eqs. (2.13)-(2.15))

    .. math::

        N_k = \sum_n \gamma_{nk}, \quad \pi_k = N_k / N, \quad
        \mu_k = \frac{1}{N_k} \sum_n \gamma_{nk} x_n, \quad
        \Sigma_k = \frac{1}{N_k} \sum_n \gamma_{nk} (x_n - \mu_k)(x_n - \mu_k)^\top.

    The likelihood is unbounded (a component can collapse onto one point), so two
    remedies of Remark 2.10 are available. ``covariance_floor`` constrains
    :math:`\Sigma_k \succeq \epsilon I`: the M-step clips the eigenvalues of the
    weighted scatter at :math:`\epsilon`, which is the exact maximiser over the
    constrained set, so the ascent stays monotone (unlike adding :math:`\epsilon I`
    after the update, as scikit-learn's ``reg_covar`` does). ``prior`` maximises
    the log posterior instead (MAP-EM, Remark 2.5), with
    :math:`\pi_k = (N_k + \alpha_k - 1) / (N + \sum_j \alpha_j - K)`,
    :math:`\mu_k = (\kappa_0 m_0 + \sum_n \gamma_{nk} x_n) / (\kappa_0 + N_k)` and
    :math:`\Sigma_k = (\Psi_0 + \sum_n \gamma_{nk} (x_n - \mu_k)(x_n - \mu_k)^\top +
    \kappa_0 (\mu_k - m_0)(\mu_k - m_0)^\top) / (\nu_0 + N_k + d + 2)`.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key for the initialisation (ignored when ``init`` is given).
    x : array_like of shape (num_points, dim)
        Observations.
    num_components : int
        Number of components :math:`K`.
    init : MixtureParams, optional
        Initial parameters. By default: k-means++ centres as means, equal weights
        and the data covariance for every component.
    num_iterations : int
        Maximum number of EM iterations.
    tol : float
        Stop when the objective per point changes by less than ``tol`` (the
        convention of scikit-learn's ``GaussianMixture``).
    covariance_floor : float
        Lower bound :math:`\epsilon \ge 0` on the eigenvalues of every covariance,
        in squared units of ``x``; 0 disables it.
    prior : EMPrior, optional
        Conjugate prior for MAP estimation; None for maximum likelihood.

    Returns
    -------
    EMResult
        Parameters, responsibilities and the objective per iteration. A
        ``RuntimeWarning`` is raised if the objective became non-finite.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import gmm, gmm_reference
    >>> data = gmm.simulate(jax.random.key(0), num_points=100, num_components=2,
    ...                     dim=2)
    >>> result = gmm_reference.em(jax.random.key(1), data["x"], num_components=2)
    >>> bool(jax.numpy.all(jax.numpy.diff(result.objective) > -1e-3))
    True

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §2.3-§2.5 and Remark 2.10.
    .. [2] A. P. Dempster, N. M. Laird and D. B. Rubin, "Maximum likelihood from
       incomplete data via the EM algorithm", JRSS B 39 (1977).
    """
    x, num_points, dim = _check_sizes(x, num_components, None, None)
    x = x.astype(jnp.result_type(float))
    if not covariance_floor >= 0:
        raise ValueError(
            f"covariance_floor must be >= 0; got {covariance_floor!r}. Pass 0 to "
            "disable the floor, or a small positive value such as 1e-6."
        )
    _check_iterations(num_iterations, tol)
    prior_arrays = (
        None if prior is None else _prior_arrays(prior, num_components, dim, x.dtype)
    )
    if init is None:
        centred = x - x.mean(0)[None, :]
        data_cov = centred.T @ centred / num_points + covariance_floor * jnp.eye(dim)
        init = MixtureParams(
            jnp.full(num_components, 1.0 / num_components, dtype=x.dtype),
            _kmeans_plus_plus(rng_key, x, num_components),
            jnp.broadcast_to(data_cov, (num_components, dim, dim)),
        )
    init = MixtureParams(*(jnp.asarray(value, x.dtype) for value in init))
    expected = ((num_components,), (num_components, dim), (num_components, dim, dim))
    if tuple(value.shape for value in init) != expected:
        raise ValueError(
            f"init must hold weights, means and covs of shapes {expected}; got "
            f"{tuple(value.shape for value in init)}."
        )
    result = _em(x, init, num_iterations, tol, float(covariance_floor), prior_arrays)
    iterations, params, resp, log_likelihood, objective = result
    iterations = int(iterations)
    objective = objective[: iterations + 1]
    if not bool(jnp.isfinite(objective[-1])):
        warnings.warn(
            MSG_NON_FINITE.format(iteration=iterations), RuntimeWarning, stacklevel=2
        )
    converged = iterations > 0 and bool(
        jnp.abs(objective[-1] - objective[-2]) < tol * num_points
    )
    return EMResult(
        params, resp, log_likelihood[: iterations + 1], objective, converged, iterations
    )


def _check_iterations(num_iterations: Any, tol: Any) -> None:
    if not isinstance(num_iterations, int) or num_iterations < 1:
        raise ValueError(
            f"num_iterations must be a positive integer; got {num_iterations!r}."
        )
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0; got {tol!r}. Pass e.g. tol=1e-6.")


@jax.jit(static_argnums=(2, 3, 4))
def _em(x, init, num_iterations, tol, floor, prior):
    num_points = x.shape[0]

    def evaluate(params):
        resp, log_likelihood = _e_step(x, params)
        log_prior = 0.0 if prior is None else _log_prior(params, prior)
        return resp, log_likelihood, log_likelihood + log_prior

    def step(state):
        params, resp, log_likelihoods, iteration = state
        params = _m_step(x, resp, floor, prior)
        resp, log_likelihood, objective = evaluate(params)
        log_likelihoods = log_likelihoods.at[iteration + 1].set(log_likelihood)
        return (params, resp, log_likelihoods, iteration + 1), objective

    resp, log_likelihood, objective = evaluate(init)
    log_likelihoods = jnp.full(num_iterations + 1, jnp.nan, dtype=x.dtype)
    log_likelihoods = log_likelihoods.at[0].set(log_likelihood)
    state = (init, resp, log_likelihoods, 0)
    iterations, state, history = _iterate(
        step, state, objective, num_points, num_iterations, tol
    )
    params, resp, log_likelihoods, _ = state
    return iterations, params, resp, log_likelihoods, history


def cavi(
    rng_key: Array,
    x: ArrayLike,
    *,
    num_components: int,
    num_iterations: int = 500,
    tol: float = 1e-6,
    **model_kwargs: Any,
) -> CAVIResult:
    r"""Coordinate ascent VI for the Bayesian mixture with known covariance.

    Mean-field family (seed Example 3.5) :math:`q(\pi) q(\mu) q(z) =
    \mathrm{Dirichlet}(\hat\alpha) \prod_k \mathcal{N}(m_k, S_k) \prod_n
    \mathrm{Categorical}(r_n)`; each factor is set to
    :math:`\exp \mathbb{E}_{q_{-j}} \log p(x, \pi, \mu, z)` in turn (eq. (3.13),
    Example 3.7 with :math:`\pi, \mu` random):

    .. math::

        \log r_{nk} &= \mathbb{E}[\log \pi_k] + \log \mathcal{N}(x_n; m_k, \Sigma)
        - \tfrac12 \operatorname{tr}(\Sigma^{-1} S_k) + \text{const}, \\
        \hat\alpha_k &= \alpha_k + N_k, \qquad N_k = \textstyle\sum_n r_{nk}, \\
        S_k^{-1} &= \Sigma_0^{-1} + N_k \Sigma^{-1}, \qquad
        m_k = S_k \big(\Sigma_0^{-1} m_0 + \Sigma^{-1} \textstyle\sum_n r_{nk} x_n
        \big).

    Each update maximises the ELBO in its factor, so the ELBO (computed in closed
    form after every sweep) never decreases.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key; the means start at k-means++ centres.
    x : array_like of shape (num_points, dim)
        Observations.
    num_components : int
        Number of components.
    num_iterations : int
        Maximum number of sweeps.
    tol : float
        Stop when the ELBO per point changes by less than ``tol``.
    **model_kwargs
        Hyperparameters of :func:`numpyro_pgm.models.gmm.model`: ``concentration``,
        ``prior_mean``, ``prior_scale``, ``obs_scale``, ``obs_cov``.

    Returns
    -------
    CAVIResult
        Variational parameters and the ELBO per sweep.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import gmm, gmm_reference
    >>> data = gmm.simulate(jax.random.key(0), num_points=50, num_components=2,
    ...                     dim=2)
    >>> fit = gmm_reference.cavi(jax.random.key(1), data["x"], num_components=2)
    >>> fit.mu_mean.shape
    (2, 2)

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, Examples 3.5 and 3.7.
    .. [2] D. M. Blei, A. Kucukelbir and J. D. McAuliffe, "Variational inference: a
       review for statisticians", JASA 112 (2017).
    """
    x, _, dim = _check_sizes(x, num_components, None, None)
    x = x.astype(jnp.result_type(float))
    _check_iterations(num_iterations, tol)
    settings = {**_MODEL_DEFAULTS, **model_kwargs}
    for name in ("learn_covariance", "ordered"):
        if settings[name]:
            raise ValueError(
                f"cavi supports the known-covariance, unordered model only; got "
                f"{name}={settings[name]!r}. Use fit(method='svi') with "
                "gmm.mean_field_guide for that variant."
            )
    hyper = _hyperparameters(settings, num_components, dim)
    hyper = tuple(jnp.asarray(value, x.dtype) for value in hyper)
    means = _kmeans_plus_plus(rng_key, x, num_components)
    iterations, state, history = _cavi(x, hyper, means, num_iterations, tol)
    iterations = int(iterations)
    elbo = history[1 : iterations + 1]
    converged = iterations > 1 and bool(jnp.abs(elbo[-1] - elbo[-2]) < tol * x.shape[0])
    return CAVIResult(*state, elbo, converged, iterations)


@jax.jit(static_argnums=(3, 4))
def _cavi(x, hyper, means, num_iterations, tol):
    num_points, dim = x.shape
    concentration, prior_mean, prior_scale, obs_cov = hyper
    num_components = concentration.shape[0]
    obs_tril = jnp.linalg.cholesky(obs_cov)
    eye = jnp.eye(dim, dtype=x.dtype)
    obs_precision = jax.scipy.linalg.cho_solve((obs_tril, True), eye)
    prior_precision = jnp.diag(prior_scale**-2)
    tiled_tril = jnp.broadcast_to(obs_tril, (num_components, dim, dim))

    def expected_log_terms(pi_concentration, mu_mean, mu_cov):
        e_log_pi = digamma(pi_concentration) - digamma(pi_concentration.sum())
        trace = jnp.einsum("ij,kji->k", obs_precision, mu_cov)
        e_log_lik = _gaussian_log_density(x, mu_mean, tiled_tril) - 0.5 * trace[None]
        return e_log_pi, e_log_lik

    def sweep(state):
        pi_concentration, mu_mean, mu_cov, _ = state
        e_log_pi, e_log_lik = expected_log_terms(pi_concentration, mu_mean, mu_cov)
        z_probs = jax.nn.softmax(e_log_pi[None, :] + e_log_lik, axis=-1)
        counts = z_probs.sum(0)
        pi_concentration = concentration + counts
        precision = prior_precision[None] + counts[:, None, None] * obs_precision[None]
        mu_cov = jnp.linalg.inv(precision)
        mu_cov = 0.5 * (mu_cov + jnp.swapaxes(mu_cov, -1, -2))
        shift = (prior_precision @ prior_mean)[None, :] + (
            z_probs.T @ x
        ) @ obs_precision
        mu_mean = jnp.einsum("kij,kj->ki", mu_cov, shift)
        state = (pi_concentration, mu_mean, mu_cov, z_probs)
        return state, _elbo(state)

    def _elbo(state):
        pi_concentration, mu_mean, mu_cov, z_probs = state
        e_log_pi, e_log_lik = expected_log_terms(pi_concentration, mu_mean, mu_cov)
        log_dirichlet_norm = gammaln(concentration.sum()) - gammaln(concentration).sum()
        q_dirichlet_norm = (
            gammaln(pi_concentration.sum()) - gammaln(pi_concentration).sum()
        )
        shift = mu_mean - prior_mean[None, :]
        e_log_prior_mu = -0.5 * (
            jnp.einsum("ki,ij,kj->k", shift, prior_precision, shift)
            + jnp.einsum("ij,kji->k", prior_precision, mu_cov)
            + dim * math.log(2 * math.pi)
            + jnp.sum(jnp.log(prior_scale**2))
        )
        entropy_mu = 0.5 * (
            dim * (1 + math.log(2 * math.pi)) + jnp.linalg.slogdet(mu_cov)[1]
        )
        return (
            jnp.sum(z_probs * (e_log_pi[None, :] + e_log_lik))
            + log_dirichlet_norm
            + jnp.sum((concentration - 1) * e_log_pi)
            + jnp.sum(e_log_prior_mu)
            - jnp.sum(xlogy(z_probs, z_probs))
            - q_dirichlet_norm
            - jnp.sum((pi_concentration - 1) * e_log_pi)
            + jnp.sum(entropy_mu)
        )

    initial = (
        concentration + num_points / num_components,
        means,
        jnp.broadcast_to(jnp.diag(prior_scale**2), (num_components, dim, dim)),
        jnp.full((num_points, num_components), 1.0 / num_components, dtype=x.dtype),
    )
    return _iterate(
        sweep, initial, jnp.asarray(-jnp.inf, x.dtype), num_points, num_iterations, tol
    )
