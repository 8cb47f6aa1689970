"""NUTS, HMC and Gibbs: NumPyro's kernels, driven by a compiled, cached chain loop.

The kernels are NumPyro's (``NUTS``, ``HMC``, and the composable ``Gibbs`` with
``CustomGibbs``/``DiscreteGibbs`` blocks); :mod:`._chains` runs them with one compiled
program per model, settings and data shapes, so a second fit compiles nothing.
Chains run with the ``chain_method`` chosen by :func:`default_chain_method`:
``"parallel"`` when JAX sees at least as many devices as chains (one chain per
device), otherwise ``"sequential"`` on a CPU (one jitted chain after another) and
``"vectorized"`` (chains batched with ``vmap``) on an accelerator. All three compile
once whatever the number of chains. Pass ``chain_method=`` to choose yourself.
"""

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer import HMC, NUTS
from numpyro.infer.gibbs import CustomGibbs, DiscreteGibbs, Gibbs
from numpyro.infer.hmc_gibbs import HMCGibbsState

from .._typing import GibbsUpdate
from ._chains import run_chains
from ._initial import check_init_params, unconstraining
from ._inspect import ModelInfo, enumerated
from ._support_checks import hoist_observed_checks

__all__ = ["default_chain_method", "run_gibbs", "run_hmc", "CHAIN_METHODS"]

CHAIN_METHODS = ("parallel", "vectorized", "sequential")

MSG_NOT_ENUMERABLE = (
    "{method} needs every latent site to be continuous or summable, but the "
    "discrete site(s) {sites} have infinite support and cannot be enumerated. "
    "Ways out: marginalise them analytically in the model; or use "
    "method='gibbs' with `conditionals={{{first!r}: update_fn}}` giving their full "
    "conditional."
)

_HMC_FIELDS = {
    "diverging": "diverging",
    "num_steps": "n_steps",
    "energy": "energy",
    "adapt_state.step_size": "step_size",
    "accept_prob": "acceptance_rate",
    "potential_energy": "lp",
}


def default_chain_method(num_chains: int) -> str:
    """Choose how chains run: parallel on enough devices, else by platform.

    Without a device per chain, a CPU runs chains one after another with one
    compiled program: NUTS chains batched with ``vmap`` all wait for the longest
    trajectory of the batch at every step, which measured 2-4x slower than
    sequential chains on the benchmark workloads. An accelerator batches them.
    """
    if num_chains <= 1:
        return "sequential"
    if jax.local_device_count() >= num_chains:
        return "parallel"
    return "sequential" if jax.default_backend() == "cpu" else "vectorized"


def _check_chain_method(chain_method: str | None, num_chains: int) -> str:
    if chain_method is None:
        return default_chain_method(num_chains)
    if chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r}."
        )
    return chain_method


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        minimum = 0 if name == "num_warmup" else 1
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int; got {value!r}.")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}; got {value}.")


def _tree_depth(num_steps: np.ndarray) -> np.ndarray:
    return np.ceil(np.log2(np.asarray(num_steps, dtype=np.float64) + 1.0)).astype(
        np.int64
    )


def _run(
    rng_key: jax.Array,
    make_kernel: Callable[[Mapping[str, Any]], Any],
    cache_key: tuple,
    data: Mapping[str, Any],
    *,
    extra_fields: Mapping[str, str],
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    chain_method: str | None,
    thinning: int,
    progress_bar: bool,
    init_values: Mapping[str, np.ndarray] | None = None,
    initial_params: Callable | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    _check_counts(
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        thinning=thinning,
    )
    chain_method = _check_chain_method(chain_method, num_chains)
    if chain_method == "parallel" and jax.local_device_count() < num_chains:
        raise ValueError(
            f"chain_method='parallel' needs one device per chain: {num_chains} chains "
            f"but JAX sees {jax.local_device_count()} device(s). Use "
            "chain_method='vectorized', fewer chains, or import numpyro_pgm before "
            "JAX starts (it then provides virtual CPU devices)."
        )
    start = time.perf_counter()
    draws, raw = run_chains(
        rng_key,
        key=cache_key,
        make_kernel=make_kernel,
        data=data,
        num_chains=num_chains,
        init_values=init_values,
        initial_params=initial_params,
        num_warmup=num_warmup,
        num_samples=num_samples,
        thinning=thinning,
        fields=tuple(extra_fields),
        chain_method=chain_method,
        progress_bar=progress_bar,
    )
    elapsed = time.perf_counter() - start
    stats = {extra_fields[k]: raw[k] for k in extra_fields}
    if "lp" in stats:
        stats["lp"] = -stats["lp"]
    if "n_steps" in stats:
        stats["tree_depth"] = _tree_depth(stats["n_steps"])
    settings = {
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "chain_method": chain_method,
        "thinning": thinning,
    }
    return draws, stats, {"settings": settings, "sampling": elapsed}


def run_hmc(
    rng_key: jax.Array,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    *,
    algorithm: str = "nuts",
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    chain_method: str | None = None,
    thinning: int = 1,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    num_leapfrog_steps: int | None = None,
    trajectory_length: float = math.pi / 2,
    dense_mass: bool = False,
    init_strategy: Callable | None = None,
    progress_bar: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    r"""Run NUTS (``algorithm="nuts"``) or static HMC over all continuous sites.

    Discrete latent sites with finite support are summed out by enumeration
    (NumPyro with funsor); any other discrete latent is an error that names it.

    Static HMC integrates for ``trajectory_length`` (a quarter period of a
    standardised Gaussian, :math:`\pi/2`, by default) unless
    ``num_leapfrog_steps`` is given. NumPyro's own default, :math:`2\pi`, is a full
    period: on near-Gaussian posteriors with an adapted mass matrix it returns each
    trajectory to its start, and the chain barely moves.
    """
    not_enumerable = [s for s in info.discrete_sites if s not in info.enumerable_sites]
    if not_enumerable:
        raise ValueError(
            MSG_NOT_ENUMERABLE.format(
                method=algorithm.upper(), sites=not_enumerable, first=not_enumerable[0]
            )
        )
    if not 0.0 < target_accept_prob < 1.0:
        raise ValueError(
            f"target_accept_prob must lie in (0, 1); got {target_accept_prob}."
        )
    sampled_model = hoist_observed_checks(enumerated(model, info.enumerable_sites))
    kernel_options: dict[str, Any] = {
        "target_accept_prob": target_accept_prob,
        "dense_mass": dense_mass,
    }
    if init_strategy is not None:
        kernel_options["init_strategy"] = init_strategy
    if algorithm == "nuts":
        kernel_options["max_tree_depth"] = max_tree_depth
    else:
        kernel_options.update(
            num_steps=num_leapfrog_steps, trajectory_length=trajectory_length
        )
    kernel_class = NUTS if algorithm == "nuts" else HMC

    def make_kernel(_: Mapping[str, Any]) -> HMC:
        return kernel_class(sampled_model, **kernel_options)

    cache_key = (
        model,
        algorithm,
        info.enumerable_sites,
        tuple(sorted(kernel_options.items())),
    )
    samples, stats, extra = _run(
        rng_key,
        make_kernel,
        cache_key,
        data,
        extra_fields=_HMC_FIELDS,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        thinning=thinning,
        progress_bar=progress_bar,
    )
    extra["settings"].update(
        algorithm=algorithm,
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth if algorithm == "nuts" else None,
        num_leapfrog_steps=num_leapfrog_steps,
        trajectory_length=trajectory_length if algorithm == "hmc" else None,
        dense_mass=dense_mass,
        enumerated_sites=list(info.enumerable_sites),
    )
    return samples, stats, extra


class _ModelCustomGibbs(CustomGibbs):
    """A CustomGibbs block that carries the model.

    NumPyro's ``Gibbs`` needs one model-based block to trace the model; when every
    site has a user conditional, the first such block carries it.
    """

    def __init__(self, gibbs_fn: Callable, model: Callable) -> None:
        super().__init__(gibbs_fn)
        self.model = model

    def wrap_model(self, wrapper: Callable) -> "_ModelCustomGibbs":
        """Return a copy whose model is wrapped (the update itself needs no model)."""
        return _ModelCustomGibbs(self._gibbs_fn, wrapper(self.model))


class _GibbsWithHMC(Gibbs):
    """A Gibbs kernel whose last block is NUTS, exposing ``hmc_state`` fields."""

    _state_cls = HMCGibbsState


def _block_sites(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def _wrap_update(
    update: GibbsUpdate, sites: tuple[str, ...], data: Mapping[str, Any]
) -> Callable:
    def gibbs_fn(*, rng_key, gibbs_sites, hmc_sites):
        new_values = update(rng_key, {**hmc_sites, **gibbs_sites}, data)
        if not isinstance(new_values, Mapping) or set(new_values) != set(sites):
            received = sorted(new_values) if isinstance(new_values, Mapping) else None
            raise ValueError(
                f"the conditional update for {list(sites)} must return a dict with "
                f"exactly the keys {sorted(sites)}; it returned keys {received}."
            )
        return {s: new_values[s] for s in sites}

    return gibbs_fn


def run_gibbs(
    rng_key: jax.Array,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    *,
    conditionals: Mapping[str | tuple[str, ...], GibbsUpdate] | None = None,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    chain_method: str | None = None,
    thinning: int = 1,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    init_params: Mapping[str, Any] | None = None,
    progress_bar: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Run block Gibbs with NumPyro's composable Gibbs kernels.

    Each entry of ``conditionals`` maps a site name (or a tuple of names) to
    ``update(rng_key, values, data) -> {site: new value}``, a draw from the full
    conditional given the current ``values`` of every latent site. Sites without
    one are updated by discrete Gibbs (finite discrete sites) or, jointly, by NUTS
    (continuous sites).

    ``init_params`` starts the chains at given values (constrained, as the model
    samples them; one value for all chains or one per chain, see
    :func:`._initial.check_init_params`); sites left out start from a prior draw.
    The sites updated by NUTS are given all together or not at all.
    """
    conditionals = {_block_sites(k): v for k, v in (conditionals or {}).items()}
    owned: set[str] = set()
    for sites, update in conditionals.items():
        unknown = [s for s in sites if s not in info.latent_sites]
        if unknown:
            raise ValueError(
                f"conditionals has key {sites!r} naming {unknown}, which are not "
                "latent sites of the model; the latent sites are "
                f"{list(info.latent_sites)}."
            )
        if not callable(update):
            raise TypeError(
                f"conditionals[{sites!r}] must be a function "
                f"update(rng_key, values, data) -> dict; got {type(update).__name__}."
            )
        overlap = owned.intersection(sites)
        if overlap:
            raise ValueError(f"sites {sorted(overlap)} appear in two conditionals.")
        owned.update(sites)
    discrete_left = [s for s in info.discrete_sites if s not in owned]
    not_enumerable = [s for s in discrete_left if s not in info.enumerable_sites]
    if not_enumerable:
        raise ValueError(
            MSG_NOT_ENUMERABLE.format(
                method="Gibbs", sites=not_enumerable, first=not_enumerable[0]
            )
        )
    continuous_left = [s for s in info.continuous_sites if s not in owned]
    init_values = check_init_params(
        init_params, info, num_chains, all_or_none=continuous_left
    )
    sampled = frozenset(info.discrete_sites)

    def no_enumeration(site: dict) -> dict:
        return {"enumerate": None} if site["name"] in sampled else {}

    def make_kernel(kwargs: Mapping[str, Any]) -> Gibbs:
        # Built inside the traced chain, so updates see the (traced) data.
        gibbs_model = hoist_observed_checks(
            handlers.infer_config(model, config_fn=no_enumeration)
        )
        blocks = []
        for sites, update in conditionals.items():
            gibbs_fn = _wrap_update(update, sites, kwargs)
            first = _ModelCustomGibbs(gibbs_fn, gibbs_model) if not blocks else None
            blocks.append((first or CustomGibbs(gibbs_fn), list(sites)))
        if discrete_left:
            blocks.append((DiscreteGibbs(gibbs_model), discrete_left))
        if not continuous_left:
            return Gibbs(blocks)
        nuts = NUTS(
            gibbs_model,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
        )
        return _GibbsWithHMC([*blocks, (nuts, None)])

    fields = (
        {f"hmc_state.{k}": v for k, v in _HMC_FIELDS.items() if k != "potential_energy"}
        if continuous_left
        else {}
    )
    cache_key = (
        model,
        "gibbs",
        tuple(conditionals.items()),
        (target_accept_prob, max_tree_depth, dense_mass),
    )
    samples, stats, extra = _run(
        rng_key,
        make_kernel,
        cache_key,
        data,
        extra_fields=fields,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        thinning=thinning,
        progress_bar=progress_bar,
        init_values=init_values,
        initial_params=unconstraining(
            handlers.infer_config(model, config_fn=no_enumeration), continuous_left
        ),
    )
    extra["settings"].update(
        conditional_sites=sorted(owned),
        discrete_gibbs_sites=discrete_left,
        nuts_sites=continuous_left,
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth if continuous_left else None,
        dense_mass=dense_mass,
    )
    return samples, stats, extra
