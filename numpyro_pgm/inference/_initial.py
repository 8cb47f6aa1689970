"""Starting values of MCMC chains given by the caller (``init_params``)."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from numpyro.distributions.transforms import biject_to
from numpyro.infer.gibbs import prototype_trace

from ._inspect import ModelInfo

__all__ = ["check_init_params", "unconstraining"]


def check_init_params(
    init_params: Mapping[str, Any] | None,
    info: ModelInfo,
    num_chains: int,
    *,
    all_or_none: Sequence[str] = (),
) -> dict[str, np.ndarray] | None:
    """Validate starting values and give each a leading chain axis.

    Parameters
    ----------
    init_params : mapping or None
        Site name to value, on the constrained space (as the model samples it):
        one value for every chain (the site's shape), or one per chain (a leading
        axis of length ``num_chains``).
    info : ModelInfo
        The model's structure.
    num_chains : int
        The number of chains.
    all_or_none : sequence of str
        Sites that must be given together or not at all (a NUTS block starts from
        a complete point).

    Returns
    -------
    dict or None
        Arrays shaped ``(num_chains, *site_shape)``.

    Raises
    ------
    ValueError
        For an unknown site, a wrong shape, a non-finite value, a value outside the
        site's support, or an incomplete NUTS block.
    """
    if init_params is None:
        return None
    if not isinstance(init_params, Mapping):
        raise TypeError(
            "init_params must be a dict {site: value}; got "
            f"{type(init_params).__name__}."
        )
    unknown = sorted(set(init_params) - set(info.latent_sites))
    if unknown:
        raise ValueError(
            f"init_params has sites {unknown} that are not latent sites of the "
            f"model; the latent sites are {list(info.latent_sites)}."
        )
    given = [s for s in all_or_none if s in init_params]
    if given and len(given) < len(all_or_none):
        missing = [s for s in all_or_none if s not in init_params]
        raise ValueError(
            f"init_params gives {given} but not {missing}: the sites "
            f"{list(all_or_none)} are updated together by NUTS, which starts from a "
            "complete point. Give all of them or none."
        )
    values = {}
    for site, value in init_params.items():
        array = np.asarray(value)
        shape = info.shapes[site]
        if array.shape == shape:
            array = np.broadcast_to(array, (num_chains, *shape))
        elif array.shape != (num_chains, *shape):
            raise ValueError(
                f"init_params[{site!r}] has shape {array.shape}; the site has shape "
                f"{shape}, so give that shape (all chains start there) or "
                f"{(num_chains, *shape)} (one start per chain)."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"init_params[{site!r}] holds NaN or inf.")
        _check_support(site, array, info.supports[site])
        values[site] = array
    return values


def _check_support(site: str, array: np.ndarray, support: Any) -> None:
    try:
        inside = np.all(np.asarray(support(array)))
    except Exception:  # noqa: BLE001 - a support that depends on other sites
        return
    if not inside:
        raise ValueError(
            f"init_params[{site!r}] lies outside the site's support ({support}); "
            "start the chains at values the model can take."
        )


def unconstraining(model: Callable, sites: Sequence[str]) -> Callable:
    """Map constrained starting values to what the kernels expect.

    NumPyro's HMC blocks start from unconstrained values, its other blocks from
    constrained ones; ``sites`` are the HMC ones. The returned function runs
    inside the traced chain program.
    """
    sites = frozenset(sites)

    def initial_params(kwargs: Mapping[str, Any], values: Mapping[str, Any]):
        if not sites.intersection(values):
            return dict(values)
        trace = prototype_trace(model, jax.random.key(0), (), dict(kwargs))
        return {
            name: biject_to(trace[name]["fn"].support).inv(value)
            if name in sites
            else value
            for name, value in values.items()
        }

    return initial_params
