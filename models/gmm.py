r"""Gaussian mixture model: the hierarchical GMM of the seed notes.

For observations :math:`x_n \in \mathbb{R}^d`, :math:`n = 1, \dots, N`, and
:math:`K` components, the generative process is (seed
``003_02afaf35b30b64a9.txt``, Example 3.1; the mixture itself is eq. (2.5) of
§2.2)

.. math::

    \pi &\sim \mathrm{Dirichlet}(\alpha), \\
    \mu_k &\sim \mathcal{N}(m_0, \Sigma_0), \qquad k = 1, \dots, K, \\
    z_n \mid \pi &\sim \mathrm{Categorical}(\pi), \\
    x_n \mid z_n, \mu &\sim \mathcal{N}(\mu_{z_n}, \Sigma_{z_n}),

with :math:`\Sigma_0 = \mathrm{diag}(s_0^2)`. By default the noise covariance is
known and shared, :math:`\Sigma_k = \Sigma`, as in the seed. With
``learn_covariance=True`` each component has its own covariance, either
:math:`\Sigma_k = \mathrm{diag}(\sigma_k) L_k L_k^\top \mathrm{diag}(\sigma_k)` with
:math:`\sigma_{kj} \sim \mathrm{HalfNormal}` and :math:`L_k \sim \mathrm{LKJCholesky}`
(``covariance_prior="lkj"``), or :math:`\Sigma_k^{-1} \sim \mathrm{Wishart}`
(``covariance_prior="wishart"``, semi-conjugate, so Gibbs has a closed-form update).

Sites (dimension names in :data:`DIMS`): ``pi`` (component), ``mu`` (component,
dim), ``z`` (point), ``x`` (point, dim), and, when learned, ``obs_scale`` (component,
dim) with ``obs_corr_cholesky`` (component, dim, dim) or ``obs_precision``
(component, dim, dim). The plates are ``component`` and ``point``; ``pi`` is not in
a plate (its components are its event dimension), nor is ``mu`` when ordered.
``z`` is marked for parallel enumeration, so NUTS and ``TraceEnum_ELBO``
marginalise it (the marginal is eq. (2.10)); :func:`responsibilities` (eq. (2.12))
recovers it afterwards. With ``ordered=True`` the components are ordered by the
first coordinate of their means and ``mu`` has the order-statistics prior
:math:`K! \prod_k \mathcal{N}(\mu_k; m_0, \Sigma_0)` on that cone, which removes
label switching without changing the model. With one component, ``z`` is the
deterministic site :math:`z_n = 0`.

Companion modules: :mod:`numpyro_pgm.models.gmm_gibbs` (conjugate full conditionals
and a standalone Gibbs sampler), :mod:`numpyro_pgm.models.gmm_em` (EM),
:mod:`numpyro_pgm.models.gmm_cavi` (CAVI) and :mod:`numpyro_pgm.models.gmm_labels`
(label switching).

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §2.2, Example 3.1, Example 3.5.
.. [2] C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer (2006),
   ch. 9 and §10.2.
"""

from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.ops.indexing import Vindex

from ._gmm_common import (
    _broadcast,
    _check_positive,
    _check_sizes,
    _first_coordinate_ordered,
    _hyperparameters,
    _kmeans_plus_plus,
    _LKJCholesky,
    _log_responsibilities,
    _MultivariateNormal,
    _precision_to_scale_tril,
    _SortedNormal,
    _Wishart,
    _wishart_df,
)

__all__ = [
    "DIMS",
    "mean_field_guide",
    "model",
    "responsibilities",
    "simulate",
]

Array = jax.Array

DIMS: dict[str, tuple[str, ...]] = {
    "pi": ("component",),
    "mu": ("component", "dim"),
    "obs_scale": ("component", "dim"),
    "obs_corr_cholesky": ("component", "dim_row", "dim_col"),
    "obs_precision": ("component", "dim_row", "dim_col"),
    "z": ("point",),
    "x": ("point", "dim"),
}
"""Dimension names of every site, without chain and draw, e.g. for ``fit(dims=...)``.

Plates name only the batch dimensions; this also names the event dimensions (the
components of ``pi`` and ordered ``mu``, the coordinates of ``mu`` and ``x``).
"""


def model(
    x: ArrayLike | None = None,
    *,
    num_components: int,
    num_points: int | None = None,
    dim: int | None = None,
    concentration: ArrayLike = 1.0,
    prior_mean: ArrayLike = 0.0,
    prior_scale: ArrayLike = 10.0,
    obs_scale: ArrayLike = 1.0,
    obs_cov: ArrayLike | None = None,
    learn_covariance: bool = False,
    covariance_prior: Literal["lkj", "wishart"] = "lkj",
    obs_scale_prior: float = 1.0,
    lkj_concentration: float = 1.0,
    wishart_df: float | None = None,
    ordered: bool = False,
) -> None:
    r"""Hierarchical Gaussian mixture model (seed Example 3.1).

    .. math::

        \pi \sim \mathrm{Dirichlet}(\alpha), \quad
        \mu_k \sim \mathcal{N}(m_0, \mathrm{diag}(s_0^2)), \quad
        z_n \sim \mathrm{Categorical}(\pi), \quad
        x_n \sim \mathcal{N}(\mu_{z_n}, \Sigma_{z_n}).

    Parameters
    ----------
    x : array_like of shape (num_points, dim), optional
        Observations; ``None`` samples them (the model is generative).
    num_components : int
        Number of components :math:`K`, between 1 and ``num_points``.
    num_points, dim : int, optional
        Sizes when ``x`` is ``None``; taken from ``x`` otherwise.
    concentration : float or array_like of shape (num_components,)
        Dirichlet concentration :math:`\alpha` of the mixing weights.
    prior_mean, prior_scale : float or array_like of shape (dim,)
        Mean :math:`m_0` and per-coordinate standard deviation :math:`s_0` of the
        prior on each component mean.
    obs_scale : float or array_like of shape (dim,)
        Known noise standard deviations, :math:`\Sigma = \mathrm{diag}(\sigma^2)`.
    obs_cov : array_like of shape (dim, dim), optional
        Known full noise covariance :math:`\Sigma`; overrides ``obs_scale``.
    learn_covariance : bool
        Give each component its own covariance with the prior ``covariance_prior``.
    covariance_prior : {"lkj", "wishart"}
        ``"lkj"``: ``obs_scale ~ HalfNormal(obs_scale_prior)`` per coordinate and
        ``obs_corr_cholesky ~ LKJCholesky(dim, lkj_concentration)`` (no correlation
        site when ``dim == 1``). ``"wishart"``: ``obs_precision ~ Wishart(wishart_df,
        I / (wishart_df * obs_scale_prior**2))``, whose mean is
        :math:`I / \text{obs\_scale\_prior}^2`.
    obs_scale_prior : float
        Scale of the prior on the learned noise standard deviations.
    lkj_concentration : float
        LKJ shape; 1 is uniform over correlation matrices.
    wishart_df : float, optional
        Wishart degrees of freedom, greater than ``dim - 1``; default ``dim + 2``.
    ordered : bool
        Order the components by the first coordinate of their means (removes label
        switching; the prior on ``mu`` becomes the order statistics of the iid
        prior, which leaves the posterior of unlabelled quantities unchanged).

    Examples
    --------
    >>> import jax
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import gmm
    >>> with handlers.seed(rng_seed=0):
    ...     trace = handlers.trace(gmm.model).get_trace(
    ...         num_components=3, num_points=50, dim=2)
    >>> trace["mu"]["value"].shape, trace["x"]["value"].shape
    ((3, 2), (50, 2))

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, Example 3.1 and §2.2.
    """
    x, num_points, dim = _check_sizes(x, num_components, num_points, dim)
    settings = dict(locals())
    conc, prior_mean, prior_scale, known_cov = _hyperparameters(
        settings, num_components, dim
    )
    pi = numpyro.sample("pi", dist.Dirichlet(conc))
    if ordered:
        mu = numpyro.sample(
            "mu", _SortedNormal(prior_mean, prior_scale, num_components)
        )
    with numpyro.plate("component", num_components):
        if not ordered:
            shape = (num_components, dim)
            mu = numpyro.sample(
                "mu",
                dist.Normal(
                    jnp.broadcast_to(prior_mean, shape),
                    jnp.broadcast_to(prior_scale, shape),
                ).to_event(1),
            )
        if learn_covariance:
            scale_tril = _sample_covariance(settings, num_components, dim)
        else:
            scale_tril = None
    if scale_tril is None:
        scale_tril = jnp.broadcast_to(
            jnp.linalg.cholesky(known_cov), (num_components, dim, dim)
        )
    with numpyro.plate("point", num_points):
        if num_components == 1:
            # One component: z = 0 surely. A deterministic site, because NumPyro's
            # discrete redraw (infer_discrete) fails on a one-category enumeration.
            z = numpyro.deterministic("z", jnp.zeros(num_points, dtype=jnp.int32))
        else:
            point_pi = jnp.broadcast_to(pi, (num_points, num_components))
            z = numpyro.sample(
                "z", dist.Categorical(point_pi), infer={"enumerate": "parallel"}
            )
        loc = Vindex(mu)[..., z, :]
        numpyro.sample(
            "x",
            _MultivariateNormal(loc, scale_tril=Vindex(scale_tril)[..., z, :, :]),
            obs=x,
        )


def _sample_covariance(settings: Mapping[str, Any], num_components: int, dim: int):
    """Sample the per-component covariance sites; return their Cholesky factors."""
    scale_prior = settings["obs_scale_prior"]
    if settings["covariance_prior"] == "wishart":
        df = _wishart_df(settings, dim)
        rate = jnp.broadcast_to(
            jnp.eye(dim) * df * scale_prior**2, (num_components, dim, dim)
        )
        precision = numpyro.sample("obs_precision", _Wishart(df, rate_matrix=rate))
        return _precision_to_scale_tril(precision)
    scale = numpyro.sample(
        "obs_scale",
        dist.HalfNormal(jnp.full((num_components, dim), scale_prior)).to_event(1),
    )
    if dim == 1:
        return scale[..., None]
    corr = numpyro.sample(
        "obs_corr_cholesky",
        _LKJCholesky(dim, settings["lkj_concentration"]),
    )
    return scale[..., :, None] * corr


def _initial_means(rng_key: Array, x: Array | None, prior_mean, prior_scale, k: int):
    """k-means++ centres (prior draws when x is None), sorted by the first column."""
    if x is None:
        noise = jax.random.normal(rng_key, (k, prior_mean.shape[-1]))
        means = prior_mean[None, :] + prior_scale[None, :] * noise
    else:
        means = _kmeans_plus_plus(rng_key, x.astype(prior_mean.dtype), k)
    return means[jnp.argsort(means[:, 0])]


def _unconstrained_normal_site(name: str, support, init_constrained, batch_ndim=1):
    """Sample ``name`` as a Normal on the unconstrained space pushed through bijection.

    ``init_constrained(rng_key)`` gives the initial value in the constrained space;
    the leading ``batch_ndim`` dimensions are plate dimensions.
    """
    transform = biject_to(support)
    loc = numpyro.param(f"{name}_loc", lambda key: transform.inv(init_constrained(key)))
    scale = numpyro.param(
        f"{name}_scale", jnp.full(jnp.shape(loc), 0.1), constraint=constraints.positive
    )
    base = dist.Normal(loc, scale).to_event(jnp.ndim(loc) - batch_ndim)
    return numpyro.sample(name, dist.TransformedDistribution(base, transform))


def mean_field_guide(
    x: ArrayLike | None = None,
    *,
    num_components: int,
    num_points: int | None = None,
    dim: int | None = None,
    concentration: ArrayLike = 1.0,
    prior_mean: ArrayLike = 0.0,
    prior_scale: ArrayLike = 10.0,
    obs_scale: ArrayLike = 1.0,
    obs_cov: ArrayLike | None = None,
    learn_covariance: bool = False,
    covariance_prior: Literal["lkj", "wishart"] = "lkj",
    obs_scale_prior: float = 1.0,
    lkj_concentration: float = 1.0,
    wishart_df: float | None = None,
    ordered: bool = False,
) -> None:
    r"""Mean-field guide for :func:`model` (seed Example 3.5), same signature.

    .. math::

        q(\pi, \mu) = \mathrm{Dirichlet}(\pi; \hat\alpha)
        \prod_{k=1}^K \prod_{j=1}^d \mathcal{N}(\mu_{kj}; m_{kj}, s_{kj}^2).

    The guide has no ``z``: the model marginalises it by enumeration, which is exact
    and has lower variance than a Categorical factor, so fit it with
    ``TraceEnum_ELBO(max_plate_nesting=1)``. With ``ordered=True`` ``mu`` is a
    diagonal Normal on the unconstrained space mapped onto the ordered cone; learned
    covariance sites get the same unconstrained mean-field Normal (as ``AutoNormal``
    would). Parameters are the model's; see :func:`model`.

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, Example 3.5.
    .. [2] D. M. Blei, A. Kucukelbir and J. D. McAuliffe, "Variational inference: a
       review for statisticians", JASA 112 (2017).
    """
    x, num_points, dim = _check_sizes(x, num_components, num_points, dim)
    settings = dict(locals())
    conc, prior_mean, prior_scale, _ = _hyperparameters(settings, num_components, dim)
    pi_concentration = numpyro.param(
        "pi_concentration",
        conc + num_points / num_components,
        constraint=constraints.positive,
    )
    numpyro.sample("pi", dist.Dirichlet(pi_concentration))

    def init_means(key):
        return _initial_means(key, x, prior_mean, prior_scale, num_components)

    if ordered:
        _unconstrained_normal_site(
            "mu", _first_coordinate_ordered, init_means, batch_ndim=0
        )
    with numpyro.plate("component", num_components):
        if not ordered:
            mu_loc = numpyro.param("mu_loc", init_means)
            mu_scale = numpyro.param(
                "mu_scale",
                jnp.full((num_components, dim), 0.1),
                constraint=constraints.positive,
            )
            numpyro.sample("mu", dist.Normal(mu_loc, mu_scale).to_event(1))
        if learn_covariance:
            _covariance_guide(settings, num_components, dim)


def _covariance_guide(settings: Mapping[str, Any], num_components: int, dim: int):
    shape = (num_components, dim)
    scale = jnp.full(shape, settings["obs_scale_prior"])
    if settings["covariance_prior"] == "wishart":
        precision = jnp.eye(dim)[None] / scale[..., :, None] ** 2
        _unconstrained_normal_site(
            "obs_precision", constraints.positive_definite, lambda key: precision
        )
        return
    _unconstrained_normal_site("obs_scale", constraints.positive, lambda key: scale)
    if dim > 1:
        eye = jnp.broadcast_to(jnp.eye(dim), shape + (dim,))
        _unconstrained_normal_site(
            "obs_corr_cholesky", constraints.corr_cholesky, lambda key: eye
        )


def responsibilities(
    x: ArrayLike,
    pi: ArrayLike,
    mu: ArrayLike,
    *,
    obs_scale: ArrayLike = 1.0,
    obs_cov: ArrayLike | None = None,
) -> Array:
    r"""Posterior assignment probabilities :math:`p(z_n = k \mid x_n, \pi, \mu)`.

    .. math::

        \gamma_{nk} = \frac{\pi_k \mathcal{N}(x_n; \mu_k, \Sigma_k)}
        {\sum_{j=1}^K \pi_j \mathcal{N}(x_n; \mu_j, \Sigma_j)}

    (seed eq. (2.12)), computed in log space for every draw in the leading
    dimensions, e.g. to recover ``z`` after NUTS marginalised it.

    Parameters
    ----------
    x : array_like of shape (num_points, dim)
        Observations.
    pi : array_like of shape (..., num_components)
        Mixing weights, one row per draw.
    mu : array_like of shape (..., num_components, dim)
        Component means with the same leading shape as ``pi``.
    obs_scale : float or array_like of shape (dim,)
        Known noise standard deviations, used when ``obs_cov`` is None.
    obs_cov : array_like, optional
        Noise covariance: shared, shape (dim, dim), or per component, shape
        (..., num_components, dim, dim) broadcastable to the draws.

    Returns
    -------
    Array of shape (..., num_points, num_components)
        The responsibilities; each row sums to one.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_pgm.models import gmm
    >>> r = gmm.responsibilities(jnp.zeros((1, 1)), jnp.array([0.5, 0.5]),
    ...                          jnp.array([[-1.0], [1.0]]))
    >>> r.tolist()
    [[0.5, 0.5]]

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §2.2, eqs. (2.11)-(2.12).
    """
    pi = jnp.asarray(pi, dtype=jnp.result_type(float))
    mu = jnp.asarray(mu, dtype=pi.dtype)
    x, _, dim = _check_sizes(x, None, None, None)
    num_components = mu.shape[-2]
    batch = pi.shape[:-1]
    if mu.shape != batch + (num_components, dim):
        raise ValueError(
            f"mu must have shape pi.shape[:-1] + (num_components, dim) = "
            f"{batch + (num_components, dim)}; got {mu.shape}. Pass draws of pi and mu "
            "with the same leading (chain, draw) dimensions."
        )
    if obs_cov is None:
        scale = _broadcast("obs_scale", obs_scale, dim, "dimension")
        _check_positive("obs_scale", scale, "1.0")
        obs_cov = jnp.diag(scale**2)
    obs_cov = jnp.asarray(obs_cov, dtype=pi.dtype)
    if obs_cov.ndim == 2:
        obs_cov = obs_cov[None, :, :]
    full_shape = batch + (num_components, dim, dim)
    padded = (1,) * (len(full_shape) - obs_cov.ndim) + obs_cov.shape
    scale_tril = jnp.broadcast_to(
        jnp.linalg.cholesky(obs_cov.reshape(padded)), full_shape
    )
    flat = jax.vmap(
        lambda p, m, tril: jnp.exp(_log_responsibilities(x.astype(p.dtype), p, m, tril))
    )(
        pi.reshape((-1, num_components)),
        mu.reshape((-1, num_components, dim)),
        scale_tril.reshape((-1, num_components, dim, dim)),
    )
    return flat.reshape(batch + (x.shape[0], num_components))


def simulate(
    rng_key: Array,
    *,
    num_points: int,
    num_components: int,
    dim: int,
    pi: ArrayLike | None = None,
    mu: ArrayLike | None = None,
    **model_kwargs: Any,
) -> dict[str, Array]:
    r"""Draw a synthetic data set by ancestral sampling of :func:`model`.

    Samples :math:`\pi`, :math:`\mu`, then :math:`z_n` and :math:`x_n` in turn (seed
    §2.2, Remark 2.2), optionally holding ``pi`` and ``mu`` at given true values.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    num_points, num_components, dim : int
        Sizes :math:`N`, :math:`K` and :math:`d`.
    pi : array_like of shape (num_components,), optional
        True mixing weights; sampled from the prior when None.
    mu : array_like of shape (num_components, dim), optional
        True means; sampled from the prior when None.
    **model_kwargs
        Any other keyword argument of :func:`model` (hyperparameters).

    Returns
    -------
    dict of str to Array
        ``x`` (num_points, dim), ``z`` (num_points,), ``pi``, ``mu`` and any
        learned covariance sites, keyed by site name.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import gmm
    >>> data = gmm.simulate(jax.random.key(0), num_points=10, num_components=2, dim=3)
    >>> sorted(data), data["x"].shape
    (['mu', 'pi', 'x', 'z'], (10, 3))
    """
    fixed = {}
    for name, value, shape in (
        ("pi", pi, (num_components,)),
        ("mu", mu, (num_components, dim)),
    ):
        if value is not None:
            fixed[name] = jnp.asarray(value, dtype=jnp.result_type(float))
            if fixed[name].shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape}; got {fixed[name].shape}. Pass "
                    f"one value per component, or None to sample it from the prior."
                )
    if "pi" in fixed and not (
        np.all(np.asarray(fixed["pi"]) >= 0)
        and np.isclose(float(fixed["pi"].sum()), 1.0, rtol=1e-5)
    ):
        raise ValueError(
            f"pi must be non-negative and sum to one; got {pi!r}. Normalise it."
        )
    conditioned = numpyro.handlers.condition(model, data=fixed)
    seeded = numpyro.handlers.seed(conditioned, rng_seed=rng_key)
    trace = numpyro.handlers.trace(seeded).get_trace(
        num_components=num_components, num_points=num_points, dim=dim, **model_kwargs
    )
    return {
        name: site["value"]
        for name, site in trace.items()
        if site["type"] in ("sample", "deterministic")
    }
