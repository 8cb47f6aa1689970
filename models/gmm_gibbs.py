r"""Conjugate Gibbs sampling for the Gaussian mixture model of :mod:`.gmm`.

Full conditionals (seed ``003_02afaf35b30b64a9.txt``, Example 3.1 with the
complete-data likelihood eq. (2.22)) for the sites of
:func:`numpyro_pgm.models.gmm.model`:

.. math::

    z_n \mid \pi, \mu, x &\sim \mathrm{Categorical}(\gamma_{n\cdot}), \\
    \pi \mid z &\sim \mathrm{Dirichlet}(\alpha + N_{1:K}), \\
    \mu_k \mid z, x &\sim \mathcal{N}(\Lambda_k^{-1} h_k, \Lambda_k^{-1}),

and a Wishart update of the precisions for ``covariance_prior="wishart"``. Each
update has the signature ``update(rng_key, values, data) -> dict`` used by
``numpyro_pgm.fit(method="gibbs", conditionals=...)``; :func:`gibbs` runs them in a
jitted ``lax.scan`` as a reference sampler.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §2.4 and Example 3.1.
.. [2] S. Geman and D. Geman, "Stochastic relaxation, Gibbs distributions, and the
   Bayesian restoration of images", IEEE TPAMI 6 (1984).
"""

import inspect
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.typing import ArrayLike

from ._gmm_common import (
    MSG_NO_CONJUGATE,
    _check_sizes,
    _hyperparameters,
    _log_responsibilities,
    _precision_to_scale_tril,
    _Wishart,
    _wishart_df,
)
from .gmm import _initial_means, model

__all__ = [
    "gibbs",
    "gibbs_conditionals",
    "update_mu",
    "update_obs_precision",
    "update_pi",
    "update_z",
]

Array = jax.Array

_MODEL_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(model).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def _unpack(data: Mapping[str, Any]):
    """Model settings with defaults, checked observations and hyperparameters."""
    settings = {**_MODEL_DEFAULTS, **data}
    if settings["x"] is None:
        raise ValueError(
            "The Gibbs conditionals need the observations; data['x'] is missing or "
            "None. Pass data={'x': x, 'num_components': K, ...}."
        )
    if "num_components" not in settings:
        raise ValueError(
            "The Gibbs conditionals need data['num_components'], the number of "
            "components; it is missing. Pass data={'x': x, 'num_components': K}."
        )
    x, _, dim = _check_sizes(settings["x"], settings["num_components"], None, None)
    hyper = _hyperparameters(settings, settings["num_components"], dim)
    return settings, x.astype(hyper[1].dtype), hyper


def _scale_tril_from_values(
    values: Mapping[str, Array], settings: Mapping[str, Any], known_cov: Array
) -> Array:
    """Per-component Cholesky factors (K, d, d) of the current noise covariances."""
    num_components, dim = settings["num_components"], known_cov.shape[-1]
    if not settings["learn_covariance"]:
        tril = jnp.linalg.cholesky(known_cov)
        return jnp.broadcast_to(tril, (num_components, dim, dim))
    if settings["covariance_prior"] == "wishart":
        return _precision_to_scale_tril(values["obs_precision"])
    scale = values["obs_scale"]
    if dim == 1:
        return scale[..., None]
    return scale[..., :, None] * values["obs_corr_cholesky"]


def update_z(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw the assignments from their full conditional.

    .. math::

        p(z_n = k \mid \pi, \mu, x) = \gamma_{nk} \propto
        \pi_k \, \mathcal{N}(x_n; \mu_k, \Sigma_k)

    independently over points (seed §2.4, eq. (2.24)).

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    values : mapping of str to Array
        Current values of all latent sites (``pi``, ``mu`` and any learned
        covariance sites), constrained space.
    data : mapping of str to Any
        The model's keyword arguments (``x``, ``num_components``, hyperparameters);
        missing keys take the model's defaults.

    Returns
    -------
    dict of str to Array
        ``{"z": z}`` with ``z`` of shape (num_points,).
    """
    settings, x, hyper = _unpack(data)
    scale_tril = _scale_tril_from_values(values, settings, hyper[3])
    log_r = _log_responsibilities(x, values["pi"], values["mu"], scale_tril)
    return {"z": jax.random.categorical(rng_key, log_r, axis=-1)}


def update_pi(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw the mixing weights from their Dirichlet full conditional.

    .. math::

        \pi \mid z \sim \mathrm{Dirichlet}(\alpha_1 + N_1, \dots, \alpha_K + N_K),
        \qquad N_k = \#\{n : z_n = k\}.

    Parameters and return as in :func:`update_z`; returns ``{"pi": pi}``.
    """
    settings, x, hyper = _unpack(data)
    counts = jax.nn.one_hot(values["z"], settings["num_components"], dtype=x.dtype)
    return {"pi": jax.random.dirichlet(rng_key, hyper[0] + counts.sum(0))}


def update_mu(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw the component means from their Normal full conditional.

    .. math::

        \mu_k \mid z, \Sigma_k, x \sim \mathcal{N}(\Lambda_k^{-1} h_k,
        \Lambda_k^{-1}), \quad
        \Lambda_k = \Sigma_0^{-1} + N_k \Sigma_k^{-1}, \quad
        h_k = \Sigma_0^{-1} m_0 + \Sigma_k^{-1} \sum_{n: z_n = k} x_n.

    Exact for the known and the learned covariances (the prior on the means does
    not depend on them), but not for ``ordered=True``. Parameters as in
    :func:`update_z`; returns ``{"mu": mu}`` of shape (num_components, dim).
    """
    settings, x, (_, prior_mean, prior_scale, known_cov) = _unpack(data)
    if settings["ordered"]:
        raise ValueError(
            MSG_NO_CONJUGATE.format(
                what="mu",
                setting="ordered=True",
                fix="Run Gibbs with ordered=False and relabel the draws with "
                "numpyro_pgm.models.gmm_labels.relabel.",
            )
        )
    num_components, dim = settings["num_components"], x.shape[-1]
    one_hot = jax.nn.one_hot(values["z"], num_components, dtype=x.dtype)
    counts, sums = one_hot.sum(0), one_hot.T @ x
    tril = _scale_tril_from_values(values, settings, known_cov)
    eye = jnp.broadcast_to(jnp.eye(dim, dtype=x.dtype), tril.shape)
    obs_precision = cho_solve((tril, True), eye)
    precision = jnp.diag(prior_scale**-2)[None] + counts[:, None, None] * obs_precision
    shift = (prior_mean / prior_scale**2)[None, :] + jnp.einsum(
        "kij,kj->ki", obs_precision, sums
    )
    chol = jnp.linalg.cholesky(precision)
    mean = cho_solve((chol, True), shift[..., None])[..., 0]
    noise = jax.random.normal(rng_key, (num_components, dim, 1), dtype=x.dtype)
    correlated = solve_triangular(jnp.swapaxes(chol, -1, -2), noise, lower=False)
    return {"mu": mean + correlated[..., 0]}


def update_obs_precision(
    rng_key: Array, values: Mapping[str, Array], data: Mapping[str, Any]
) -> dict[str, Array]:
    r"""Draw the component precisions from their Wishart full conditional.

    For ``learn_covariance=True, covariance_prior="wishart"``, with prior
    :math:`\Lambda_k \sim \mathrm{Wishart}(\nu_0, R_0^{-1})` (rate :math:`R_0`),

    .. math::

        \Lambda_k \mid z, \mu, x \sim \mathrm{Wishart}\Big(\nu_0 + N_k,
        \big(R_0 + \textstyle\sum_{n: z_n = k} (x_n - \mu_k)(x_n - \mu_k)^\top
        \big)^{-1}\Big).

    Parameters as in :func:`update_z`; returns ``{"obs_precision": precision}``
    of shape (num_components, dim, dim).
    """
    settings, x, _ = _unpack(data)
    num_components, dim = settings["num_components"], x.shape[-1]
    df = _wishart_df(settings, dim)
    one_hot = jax.nn.one_hot(values["z"], num_components, dtype=x.dtype)
    diff = x[None, :, :] - values["mu"][:, None, :]
    weighted = one_hot.T[:, :, None] * diff
    scatter = jnp.einsum("kni,knj->kij", weighted, diff)
    rate = jnp.eye(dim, dtype=x.dtype)[None] * df * settings["obs_scale_prior"] ** 2
    posterior = _Wishart(df + one_hot.sum(0), rate_matrix=rate + scatter)
    return {"obs_precision": posterior.sample(rng_key)}


def gibbs_conditionals(
    *,
    learn_covariance: bool = False,
    covariance_prior: Literal["lkj", "wishart"] = "lkj",
    ordered: bool = False,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Return the conjugate full-conditional updates for a model configuration.

    Parameters
    ----------
    learn_covariance, covariance_prior, ordered
        As in :func:`model`.
    **model_kwargs
        Other model keyword arguments, accepted and ignored so that
        ``gibbs_conditionals(**data)`` works.

    Returns
    -------
    dict of str to callable
        Site name to ``update(rng_key, values, data) -> dict``, in sweep order:
        ``z``, ``pi``, ``mu`` and, for the Wishart prior, ``obs_precision``.

    Raises
    ------
    ValueError
        For ``ordered=True`` or the LKJ covariance prior, which have no
        closed-form conditionals.
    """
    if ordered:
        raise ValueError(
            MSG_NO_CONJUGATE.format(
                what="mu",
                setting="ordered=True",
                fix="Run Gibbs with ordered=False and relabel the draws with "
                "numpyro_pgm.models.gmm_labels.relabel.",
            )
        )
    conditionals = {"z": update_z, "pi": update_pi, "mu": update_mu}
    if not learn_covariance:
        return conditionals
    if covariance_prior == "wishart":
        return {**conditionals, "obs_precision": update_obs_precision}
    raise ValueError(
        MSG_NO_CONJUGATE.format(
            what="obs_scale/obs_corr_cholesky",
            setting=f"{covariance_prior=}",
            fix="Use covariance_prior='wishart' for Gibbs, or NUTS.",
        )
    )


def gibbs(
    rng_key: Array,
    x: ArrayLike,
    *,
    num_components: int,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    init: Mapping[str, ArrayLike] | None = None,
    **model_kwargs: Any,
) -> dict[str, Array]:
    r"""Run the conjugate Gibbs sampler, jitted with ``lax.scan``.

    Each sweep draws ``z``, ``pi``, ``mu`` (and ``obs_precision`` for the Wishart
    prior) from the full conditionals of :func:`gibbs_conditionals`, so the chain
    leaves :math:`p(\pi, \mu, z \mid x)` invariant. This is the reference that
    the generic ``fit(method="gibbs")`` route is compared against. Warmup and kept
    sweeps run in one ``lax.scan`` (one compiled sweep), so memory grows with
    ``num_warmup + num_samples``; the program is compiled once per model
    configuration and data shape. Labels may switch between chains: see
    :mod:`numpyro_pgm.models.gmm_labels`.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    x : array_like of shape (num_points, dim)
        Observations.
    num_components : int
        Number of components.
    num_samples, num_warmup : int
        Sweeps kept per chain, and sweeps discarded before them.
    num_chains : int
        Independent chains (vectorised with ``vmap``).
    init : mapping of str to array_like, optional
        Initial ``pi`` and ``mu`` (and ``obs_precision``) shared by all chains.
        By default each chain starts at ``pi = 1/K`` and ``mu`` at k-means++
        centres drawn with its own key.
    **model_kwargs
        Other keyword arguments of :func:`numpyro_pgm.models.gmm.model`.

    Returns
    -------
    dict of str to Array
        Draws of every latent site, each shaped ``(num_chains, num_samples,
        *site_shape)``.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import gmm, gmm_gibbs
    >>> data = gmm.simulate(jax.random.key(0), num_points=20, num_components=2, dim=1)
    >>> draws = gmm_gibbs.gibbs(jax.random.key(1), data["x"], num_components=2,
    ...                         num_samples=10, num_warmup=10)
    >>> draws["mu"].shape
    (1, 10, 2, 1)
    """
    data = {"x": x, "num_components": num_components, **model_kwargs}
    settings, x, _ = _unpack(data)
    gibbs_conditionals(**settings)
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if not isinstance(num_warmup, int) or num_warmup < 0:
        raise ValueError(
            f"num_warmup must be a non-negative integer; got {num_warmup!r}."
        )
    # Python scalars and strings configure the model (static); arrays are data.
    data = {**data, "x": x}
    scalar = (str, bool, int, float, type(None))
    arrays = {k: jnp.asarray(v) for k, v in data.items() if not isinstance(v, scalar)}
    static = tuple(sorted((k, v) for k, v in data.items() if k not in arrays))
    if init is not None:
        init = {name: jnp.asarray(value, x.dtype) for name, value in init.items()}
    keys = jax.random.split(rng_key, num_chains)
    return _run_gibbs(keys, arrays, init, static, num_warmup, num_samples)


@jax.jit(static_argnums=(3, 4, 5))
def _run_gibbs(keys, arrays, init, static, num_warmup, num_samples):
    """Chains of Gibbs sweeps; one jitted program per model configuration."""
    data = {**dict(static), **arrays}
    settings, x, hyper = _unpack(data)
    conditionals = gibbs_conditionals(**settings)
    num_components, dim = settings["num_components"], x.shape[-1]

    def initial_values(key):
        values = {
            "pi": jnp.full(num_components, 1.0 / num_components, dtype=x.dtype),
            "mu": _initial_means(key, x, hyper[1], hyper[2], num_components),
            "z": jnp.zeros(x.shape[0], dtype=jnp.int32),
        }
        if "obs_precision" in conditionals:
            precision = jnp.eye(dim, dtype=x.dtype) / settings["obs_scale_prior"] ** 2
            values["obs_precision"] = jnp.broadcast_to(
                precision, (num_components, dim, dim)
            )
        return values if init is None else {**values, **init}

    def sweep(values, key):
        keys = jax.random.split(key, len(conditionals))
        for update_key, update in zip(keys, conditionals.values(), strict=True):
            values = {**values, **update(update_key, values, data)}
        return values, values

    def run_chain(key):
        # One scan over warmup and sampling (one compiled sweep); drop the warmup.
        init_key, run_key = jax.random.split(key)
        steps = jax.random.split(run_key, num_warmup + num_samples)
        _, draws = jax.lax.scan(sweep, initial_values(init_key), steps)
        return {name: value[num_warmup:] for name, value in draws.items()}

    return jax.vmap(run_chain)(keys)
