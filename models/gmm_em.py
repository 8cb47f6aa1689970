r"""Expectation maximisation for Gaussian mixtures, with the degeneracy remedies.

EM for the maximum-likelihood (or MAP) mixture :math:`p(x) = \sum_k \pi_k
\mathcal{N}(x; \mu_k, \Sigma_k)` with full per-component covariances (seed
``003_02afaf35b30b64a9.txt``, §2.3-§2.5), the reference algorithm of chapter 2. The
likelihood is unbounded, so :func:`em` offers two remedies of Remark 2.10: a floor on
the covariance eigenvalues (constrained ML) and a conjugate prior (MAP-EM). Both keep
the objective non-decreasing (eq. (2.37)), which the returned history records.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §2.3-§2.5, Remarks 2.5 and 2.10.
.. [2] C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer (2006),
   §9.2.
.. [3] S. Ingrassia, "A likelihood-based constrained algorithm for multivariate
   normal mixture models", Statistical Methods and Applications 13 (2004).
"""

import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, multigammaln, xlogy
from jax.typing import ArrayLike

from ._gmm_common import (
    _check_iterations,
    _check_sizes,
    _gaussian_log_density,
    _iterate,
    _kmeans_plus_plus,
)

__all__ = ["EMPrior", "EMResult", "MixtureParams", "em"]

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


def _m_step(x: Array, resp: Array, floor: Array, prior) -> MixtureParams:
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
    covs = jnp.where(floor > 0, _clip_eigenvalues(covs, floor), covs)
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


def _prior_vector(prior: EMPrior, name: str, size: int, per: str, dtype) -> Array:
    value = jnp.asarray(getattr(prior, name), dtype)
    if value.shape not in ((), (size,)):
        raise ValueError(
            f"prior.{name} must be a scalar or have shape ({size},), one value per "
            f"{per}; got shape {value.shape}. Pass EMPrior({name}=...) with one "
            f"value per {per}, or a scalar for all."
        )
    return jnp.broadcast_to(value, (size,))


def _prior_arrays(prior: EMPrior, num_components: int, dim: int, dtype):
    concentration = _prior_vector(
        prior, "concentration", num_components, "component", dtype
    )
    mean = _prior_vector(prior, "mean", dim, "dimension of x", dtype)
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
    >>> from numpyro_pgm.models import gmm, gmm_em
    >>> data = gmm.simulate(jax.random.key(0), num_points=100, num_components=2,
    ...                     dim=2)
    >>> result = gmm_em.em(jax.random.key(1), data["x"], num_components=2)
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


@jax.jit(static_argnums=2)
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
