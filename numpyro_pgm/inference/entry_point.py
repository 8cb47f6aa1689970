"""The one entry point: ``fit(rng_key, model, *, data, method, ...)``."""

import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Data, Model
from .._validation import check_data, check_model, check_rng_key
from ..results import InferenceResult
from ._inspect import ModelInfo, inspect_model
from ._keys import FoldedKey
from ._posterior import complete_draws, pointwise_log_likelihood, predictive_groups
from .laplace import run_laplace, run_map
from .mcmc import run_gibbs, run_hmc
from .svi import run_svi

__all__ = ["METHODS", "fit"]

_RUNNERS: dict[str, Callable] = {
    "nuts": run_hmc,
    "hmc": run_hmc,
    "gibbs": run_gibbs,
    "laplace": run_laplace,
    "map": run_map,
    "svi": run_svi,
}
METHODS = tuple(_RUNNERS)
_RESERVED = ("rng_key", "model", "data", "info", "algorithm")


def _method_options(method: str) -> tuple[str, ...]:
    parameters = inspect.signature(_RUNNERS[method]).parameters
    return tuple(
        name
        for name, p in parameters.items()
        if p.kind is p.KEYWORD_ONLY and name not in _RESERVED
    )


def fit(
    rng_key: jax.Array,
    model: Model,
    *,
    data: Data | None = None,
    method: str,
    guide: Any = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    prior: bool = False,
    posterior_predictive: bool = False,
    checks: bool = True,
    **options: Any,
) -> InferenceResult:
    r"""Fit a NumPyro model by one of six methods and return one kind of result.

    Parameters
    ----------
    rng_key : jax.Array
        A PRNG key, e.g. ``jax.random.key(0)``; the same key gives the same draws.
    model : callable
        A NumPyro model whose keyword arguments are the keys of ``data``.
    data : mapping, optional
        The model's keyword arguments: observations, sizes, hyperparameters.
        NumPy/JAX arrays are data; Python numbers and other objects are treated as
        static configuration (shapes, sizes).
    method : {"nuts", "hmc", "gibbs", "laplace", "map", "svi"}
        ``"nuts"``/``"hmc"``: ``numpyro.infer.MCMC`` (4 chains by default),
        finite discrete latents summed out by enumeration. ``"gibbs"``: NumPyro's
        Gibbs kernels, with ``conditionals={site: update}`` full conditionals;
        other discrete sites by discrete Gibbs, continuous ones by NUTS.
        ``"laplace"``: a Gaussian at the mode on the unconstrained space, with the
        Laplace estimate of :math:`\log p(x)` in ``sample_stats.log_evidence``.
        ``"map"``: the mode alone. ``"svi"``: variational inference with ``guide``.
    guide : str, AutoGuide or callable, optional
        For ``method="svi"``: an AutoGuide name (``"normal"``, ``"diagonal"``,
        ``"mvn"``, ``"lowrank"``, ``"delta"``, ``"laplace"``, ``"iaf"``,
        ``"bnaf"``), an AutoGuide instance, or a guide function with the model's
        signature. Defaults to ``"normal"``.
    coords : mapping, optional
        Coordinate values by dimension (plate) name, e.g. ``{"point": ids}``.
    dims : mapping, optional
        Dimension names by site, overriding those read from the plates.
    prior, posterior_predictive : bool
        Also draw the ``prior``/``prior_predictive`` groups, and the
        ``posterior_predictive`` group.
    checks : bool
        Run :func:`numpyro_pgm.check` at the end and warn about what fails.
    **options
        Method settings; ``fit`` rejects a name the method does not take, and lists
        those it does. NUTS/HMC/Gibbs: ``num_warmup`` (1000), ``num_samples``
        (1000), ``num_chains`` (4), ``chain_method`` (see
        :func:`numpyro_pgm.inference.mcmc.default_chain_method`), ``thinning``,
        ``target_accept_prob``, ``max_tree_depth``, ``dense_mass``,
        ``progress_bar``; NUTS/HMC also ``init_strategy`` (NumPyro's, e.g.
        ``init_to_value(values=...)``), Gibbs ``conditionals`` and ``init_params``
        (constrained starting values, one for all chains or one per chain).
        Laplace/MAP: ``optimizer`` (``"lbfgs"`` or
        ``"newton"``), ``max_iterations``, ``tolerance``, ``hessian_repair``.
        SVI: ``num_steps``, ``num_samples``, ``num_chains`` (restarts),
        ``learning_rate``, ``optimizer``, ``loss``, ``stop_on_plateau``.

    Returns
    -------
    InferenceResult
        Draws shaped ``(chain, draw, *site)`` with statistics, pointwise
        log-likelihood, data and timings; ``.to_datatree()`` gives ArviZ's
        ``DataTree``.

    Examples
    --------
    >>> import jax, numpy as np, numpyro, numpyro.distributions as dist
    >>> import numpyro_pgm as pgm
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    ...     with numpyro.plate("point", 3):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> y = np.array([1.0, 2.0, 3.0])
    >>> result = pgm.fit(jax.random.key(0), model, data={"y": y}, method="laplace")
    >>> result.samples["mu"].shape
    (1, 1000)
    >>> round(float(result.samples["mu"].mean()), 1)
    2.0
    """
    start = time.perf_counter()
    rng_key = check_rng_key(rng_key)
    check_model(model)
    if method not in _RUNNERS:
        raise ValueError(
            f"method must be one of {METHODS}; got {method!r}. For variational "
            "inference use method='svi' with guide=..."
        )
    allowed = _method_options(method)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"method={method!r} does not take option(s) {unknown}; it takes "
            f"{sorted(allowed)}."
        )
    if guide is not None and method != "svi":
        raise ValueError(
            f"guide is only used by method='svi'; got guide={guide!r} with "
            f"method={method!r}. Drop guide or use method='svi'."
        )
    data = check_data(model, data)
    # Device arrays made now follow the current precision (float32, or float64
    # under jax_enable_x64), so compiled programs never see a stale conversion.
    data = {
        k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in data.items()
    }
    # The method gets the caller's key itself, so NUTS draws equal those of
    # NumPyro's MCMC run with the same key; the other steps use keys folded from it
    # when they need one (each eager fold compiles a small program).
    run_key = rng_key
    inspect_key, complete_key, predictive_key = (
        FoldedKey(rng_key, i) for i in (1, 2, 3)
    )
    info = inspect_model(model, data, inspect_key)
    if not info.observed_sites and not info.factor_sites:
        raise ValueError(
            "the model has no observed site with this data, so the posterior would "
            "be the prior. Pass the observations in data (e.g. data={'y': y}), or "
            "use `numpyro.infer.Predictive` to sample the prior."
        )

    if checks and method in ("svi", "laplace"):  # Pareto k-hat needs arviz-stats
        from ..diagnostics import preload

        preload()
    setup_seconds = time.perf_counter() - start
    runner_options = dict(options)
    if method in ("nuts", "hmc"):
        runner_options["algorithm"] = method
    if method == "svi":
        runner_options["guide"] = "normal" if guide is None else guide
    latent, stats, extra = _RUNNERS[method](
        run_key, model, data, info, **runner_options
    )
    postprocessing_start = time.perf_counter()
    params = extra.get("params")
    first_params = jax.tree.map(lambda v: v[0], params) if params else None
    draws = complete_draws(complete_key, model, data, info, latent, params=first_params)
    log_likelihood = pointwise_log_likelihood(
        model, data, info, draws, params=first_params
    )
    groups = {
        "posterior": draws,
        "sample_stats": stats,
        "log_likelihood": log_likelihood,
        "observed_data": info.observed_values,
        "constant_data": _constant_data(data, info),
        "learned_params": _flat_params(params),
    }
    groups.update(
        predictive_groups(
            predictive_key,
            model,
            data,
            info,
            draws,
            params=first_params,
            prior=prior,
            posterior_predictive=posterior_predictive,
        )
    )
    timings = {"setup": setup_seconds}
    timings.update({k: v for k, v in extra.items() if isinstance(v, float)})
    timings["postprocessing"] = time.perf_counter() - postprocessing_start
    timings["total"] = time.perf_counter() - start
    result = InferenceResult(
        method=method,
        groups=groups,
        dims=_group_dims(groups, info, dims or {}),
        coords=dict(coords or {}),
        settings=extra["settings"],
        timings=timings,
    )
    if checks:
        from ..diagnostics import warn_on_failures

        warn_on_failures(result, stacklevel=3)
    return result


def _constant_data(data: Mapping[str, Any], info: ModelInfo) -> dict[str, np.ndarray]:
    def is_observation(value: np.ndarray) -> bool:
        return any(
            obs.shape == value.shape and np.array_equal(obs, value, equal_nan=True)
            for obs in info.observed_values.values()
        )

    constant = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(
            value, np.ndarray | jax.Array | int | float
        ):
            continue
        array = np.asarray(value)
        if key in info.observed_sites or is_observation(array):
            continue
        constant[key] = array
    return constant


def _flat_params(params: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Flatten learned parameters (one leading axis per restart) to named arrays.

    Nested parameters (a network's weights: dictionaries, lists, the fields of an
    Equinox module) are named by their path joined with dots, e.g.
    ``decoder$params.layers.0.weight``; a "/" would be a group separator in a
    DataTree.
    """
    if not params:
        return {}

    def part(key: Any) -> str:
        for attribute in ("key", "idx", "name"):
            if hasattr(key, attribute):
                return str(getattr(key, attribute))
        return str(key)

    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {
        ".".join(part(k) for k in path).replace("/", "."): np.asarray(leaf)
        for path, leaf in leaves
    }


def _group_dims(
    groups: Mapping[str, Mapping[str, Any]],
    info: ModelInfo,
    user_dims: Mapping[str, tuple[str, ...]],
) -> dict[str, dict[str, tuple[str, ...]]]:
    site_dims = {**info.dims, **{k: tuple(v) for k, v in user_dims.items()}}
    per_group: dict[str, dict[str, tuple[str, ...]]] = {}
    for group, variables in groups.items():
        sampled = group not in ("observed_data", "constant_data", "learned_params")
        lead = ("chain", "draw") if sampled else ()
        if group == "learned_params":
            lead = ("chain",)
        per_group[group] = {}
        for var, value in variables.items():
            ndim = np.ndim(value) - len(lead)
            names = site_dims.get(var)
            if group == "sample_stats" or names is None or len(names) != ndim:
                names = tuple(f"{var}_dim_{i}" for i in range(max(ndim, 0)))
            if group == "sample_stats":
                per_group[group][var] = _stat_dims(var, np.ndim(value), info)
            else:
                per_group[group][var] = lead + tuple(names)
    return per_group


def _stat_dims(var: str, ndim: int, info: ModelInfo) -> tuple[str, ...]:
    if var == "elbo":
        return ("chain", "step")
    if var.endswith("_mode") and var[: -len("_mode")] in info.dims:
        site = var[: -len("_mode")]
        return ("chain",) + info.dims[site][: ndim - 1]
    if ndim == 1:
        return ("chain",)
    return ("chain", "draw") + tuple(f"{var}_dim_{i}" for i in range(ndim - 2))
