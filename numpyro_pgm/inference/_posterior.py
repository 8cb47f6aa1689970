"""What every method does with its latent draws: complete, score and predict.

All functions take draws shaped ``(chain, draw, *site)`` and return the same layout.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.infer import Predictive

from ._inspect import ModelInfo, enumerated, split_data, uncondition
from ._keys import KeyLike, resolve_key

__all__ = [
    "complete_draws",
    "pointwise_log_likelihood",
    "predictive_groups",
]


def _flatten(draws: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[int, int]]:
    """Merge the (chain, draw) axes; host arrays stay on the host (no program)."""
    first = next(iter(draws.values()))
    batch = tuple(np.shape(first)[:2])
    flat = {
        k: (v if isinstance(v, jax.Array) else np.asarray(v)).reshape(
            -1, *np.shape(v)[2:]
        )
        for k, v in draws.items()
    }
    return flat, batch


def _unflatten(
    flat: Mapping[str, Any], batch: tuple[int, int]
) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).reshape(*batch, *np.shape(v)[1:]) for k, v in flat.items()}


def _with_params(model: Callable, params: Mapping[str, Any] | None) -> Callable:
    return handlers.substitute(model, data=dict(params)) if params else model


def complete_draws(
    rng_key: KeyLike,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    latent_draws: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Add deterministic sites and draws of summed-out discrete sites.

    Discrete sites that the method summed out are drawn from their conditional
    posterior given each draw of the continuous sites (``infer_discrete``), so no
    latent site is silently dropped.
    """
    missing_discrete = tuple(s for s in info.enumerable_sites if s not in latent_draws)
    missing_deterministic = tuple(
        s for s in info.deterministic_sites if s not in latent_draws
    )
    out = {k: np.asarray(v) for k, v in latent_draws.items()}
    if not (missing_discrete or missing_deterministic):
        return out
    flat, batch = _flatten(latent_draws)
    base = _with_params(model, params)
    discrete_key, deterministic_key = jax.random.split(resolve_key(rng_key))
    if missing_discrete:
        drawn = Predictive(
            enumerated(base, missing_discrete),
            posterior_samples=flat,
            return_sites=list(missing_discrete),
            infer_discrete=True,
            batch_ndims=1,
        )(discrete_key, **data)
        flat = {**flat, **drawn}
        out.update(_unflatten(drawn, batch))
    if missing_deterministic:
        computed = Predictive(
            base,
            posterior_samples=flat,
            return_sites=list(missing_deterministic),
            batch_ndims=1,
        )(deterministic_key, **data)
        out.update(_unflatten(computed, batch))
    return out


def pointwise_log_likelihood(
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    draws: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    r"""Log density of each observation given each draw, discrete latents summed out.

    For a site ``x`` with a local discrete latent ``z`` (a mixture),

    .. math::

        \log p(x_n \mid \theta) = \log \sum_k p(z_n = k \mid \theta)\,
        p(x_n \mid z_n = k, \theta),

    which is what makes PSIS-LOO valid for mixtures. Returns an empty dict when the
    likelihood does not split over observations (a discrete latent shared by many
    observations).
    """
    if not info.observed_sites:
        return {}
    continuous = {k: v for k, v in draws.items() if k not in info.enumerable_sites}
    dynamic, static_values = split_data(data)
    static = tuple(sorted(static_values.items()))
    obs_shapes = tuple((k, np.shape(v)) for k, v in info.observed_values.items())
    settings = (model, info.enumerable_sites, info.max_plate_nesting, obs_shapes)
    try:
        key = hash((settings, static))
        program = _LOG_LIKELIHOOD_PROGRAMS.get((settings, static))
    except TypeError:  # unhashable static data: build without caching
        key, program = None, None
    if program is None:
        program = _log_likelihood_program(model, info, dict(static))
        if key is not None:
            _LOG_LIKELIHOOD_PROGRAMS[(settings, static)] = program
    flat, batch = _flatten(continuous)
    obs_size = sum(int(np.size(v)) for v in info.observed_values.values())
    try:
        values = _map_in_chunks(
            lambda rows: program(rows, dynamic, params or {}),
            flat,
            max(1, _CHUNK_ELEMENTS // max(obs_size, 1)),
        )
    except _NotPointwise:
        return {}
    return _unflatten(values, batch)


_LOG_LIKELIHOOD_PROGRAMS: dict = {}


def _log_likelihood_program(
    model: Callable, info: ModelInfo, static: Mapping[str, Any]
) -> Callable:
    """Build the jitted, draw-vectorised pointwise log-likelihood."""
    enum_sites = info.enumerable_sites
    depth = info.max_plate_nesting
    if enum_sites:
        from numpyro.contrib.funsor import enum

        model = enum(enumerated(model, enum_sites), first_available_dim=-depth - 1)

    def single(sample, dynamic, params):
        scored = _with_params(model, params)
        substituted = handlers.substitute(handlers.seed(scored, 0), data=sample)
        model_trace = handlers.trace(substituted).get_trace(**dynamic, **static)
        discrete_terms = [
            model_trace[name]["fn"].log_prob(model_trace[name]["value"])
            for name in enum_sites
        ]
        result = {}
        for name in info.observed_sites:
            site = model_trace[name]
            log_prob = site["fn"].log_prob(site["value"])
            if discrete_terms:
                obs_shape = np.shape(info.observed_values[name])
                obs_batch = obs_shape[: len(obs_shape) - len(site["fn"].event_shape)]
                total = log_prob
                for term in discrete_terms:
                    trailing = jnp.shape(term)[jnp.ndim(term) - depth :]
                    if trailing != tuple(obs_batch[len(obs_batch) - depth :]):
                        raise _NotPointwise(name)
                    total = total + term
                num_enum = jnp.ndim(total) - depth
                total = logsumexp(total, axis=tuple(range(num_enum)))
                total = jnp.broadcast_to(total, obs_batch) if jnp.ndim(total) else total
                log_prob = total
            result[name] = log_prob
        return result

    return jax.jit(jax.vmap(single, in_axes=(0, None, None)))


_CHUNK_ELEMENTS = 20_000_000


def _map_in_chunks(vectorised, flat: Mapping[str, jax.Array], chunk: int) -> Any:
    """Apply the row-vectorised ``vectorised`` to ``chunk`` rows at a time.

    The last chunk is padded, so a jitted ``vectorised`` compiles once.
    """
    total = int(np.shape(next(iter(flat.values())))[0])
    chunk = min(chunk, total)
    pieces = []
    for start in range(0, total, chunk):
        rows = {k: v[start : start + chunk] for k, v in flat.items()}
        short = chunk - int(np.shape(next(iter(rows.values())))[0])
        if short:
            rows = {
                k: jnp.concatenate([v, jnp.repeat(v[-1:], short, axis=0)])
                for k, v in rows.items()
            }
        out = vectorised(rows)
        pieces.append(jax.tree.map(lambda v: np.asarray(v)[: chunk - short], out))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *pieces)


class _NotPointwise(Exception):
    """A discrete latent is shared by several observations."""


def predictive_groups(
    rng_key: KeyLike,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    draws: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    prior: bool = False,
    posterior_predictive: bool = False,
    num_prior_samples: int = 500,
) -> dict[str, dict[str, np.ndarray]]:
    """Draw the prior, prior-predictive and posterior-predictive groups on request."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    if not (prior or (posterior_predictive and info.observed_sites)):
        return groups
    free = uncondition(_with_params(model, params), sites=info.observed_sites)
    prior_key, posterior_key = jax.random.split(resolve_key(rng_key))
    if prior:
        simulated = Predictive(free, num_samples=num_prior_samples)(prior_key, **data)
        simulated = {k: np.asarray(v)[None] for k, v in simulated.items()}
        groups["prior"] = {
            k: v
            for k, v in simulated.items()
            if k in info.latent_sites or k in info.deterministic_sites
        }
        groups["prior_predictive"] = {
            k: v for k, v in simulated.items() if k in info.observed_sites
        }
    if posterior_predictive and info.observed_sites:
        flat, batch = _flatten(draws)
        replicated = Predictive(
            free,
            posterior_samples=flat,
            return_sites=list(info.observed_sites),
            batch_ndims=1,
        )(posterior_key, **data)
        groups["posterior_predictive"] = _unflatten(replicated, batch)
    return groups
