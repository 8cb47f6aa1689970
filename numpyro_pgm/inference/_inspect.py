"""Trace a model once to learn its sites, plates and discrete latents."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer.gibbs import prototype_trace
from numpyro.infer.util import _guess_max_plate_nesting
from numpyro.primitives import Messenger

from .._validation import check_finite_observations, missing_ok_arguments
from ._keys import KeyLike, resolve_key
from ._support_checks import check_observed_support

__all__ = [
    "ModelError",
    "ModelInfo",
    "enumerated",
    "inspect_model",
    "split_data",
    "uncondition",
]


class ModelError(ValueError):
    """The model could not be run with the data it was given."""


@dataclass(frozen=True)
class ModelInfo:
    """What one trace of the model tells about its structure.

    Attributes
    ----------
    latent_sites : tuple of str
        Unobserved sample sites in trace order.
    continuous_sites, discrete_sites : tuple of str
        The latent sites split by support.
    enumerable_sites : tuple of str
        Discrete latent sites with finite support (can be summed out).
    observed_sites : tuple of str
        Observed sample sites, excluding ``numpyro.factor`` terms.
    factor_sites : tuple of str
        ``numpyro.factor`` terms.
    deterministic_sites : tuple of str
        ``numpyro.deterministic`` sites.
    observed_values : dict
        The observed values, as NumPy arrays.
    dims : dict
        Dimension names of each site's value, from its plates (plate name = dim
        name) and ``{site}_dim_{i}`` for event dimensions.
    shapes : dict
        The shape of each latent site's value.
    supports : dict
        The support (a NumPyro constraint) of each latent site.
    max_plate_nesting : int
        The number of nested plates, for enumeration.
    subsampled : bool
        Whether a plate draws minibatches (``subsample_size`` < size).
    """

    latent_sites: tuple[str, ...]
    continuous_sites: tuple[str, ...]
    discrete_sites: tuple[str, ...]
    enumerable_sites: tuple[str, ...]
    observed_sites: tuple[str, ...]
    factor_sites: tuple[str, ...]
    deterministic_sites: tuple[str, ...]
    observed_values: dict[str, np.ndarray]
    dims: dict[str, tuple[str, ...]]
    shapes: dict[str, tuple[int, ...]]
    supports: dict[str, Any]
    max_plate_nesting: int
    subsampled: bool


def _site_dims(name: str, site: Mapping[str, Any]) -> tuple[str, ...]:
    shape = np.shape(site["value"])
    fn = site.get("fn")
    event_ndim = len(getattr(fn, "event_shape", ())) if fn is not None else 0
    batch_ndim = len(shape) - event_ndim
    names = [f"{name}_dim_{i}" for i in range(len(shape))]
    for frame in site.get("cond_indep_stack", ()):
        axis = batch_ndim + frame.dim
        if 0 <= axis < batch_ndim and shape[axis] == frame.size:
            names[axis] = frame.name
    return tuple(names)


def _abstract_trace(model: Callable, rng_key, data: Mapping[str, Any]):
    """Trace the model abstractly: its structure without running it.

    Run eagerly, every operation of the model would be compiled on its own (70 small
    XLA programs and 2 s for a three-component mixture); traced under
    :func:`jax.eval_shape`, nothing is compiled. The data are closed over, so
    observations passed straight from ``data`` keep their concrete values. Returns
    ``None`` when an observed value is computed inside the model (a tracer here),
    so that the caller traces eagerly instead.
    """
    captured = {}

    def run():
        key = resolve_key(rng_key)
        captured["trace"] = prototype_trace(model, key, (), dict(data))

    jax.eval_shape(run)
    model_trace = captured["trace"]
    for site in model_trace.values():
        if (
            site["type"] == "sample"
            and site["is_observed"]
            and type(site["fn"]).__name__ != "Unit"  # numpyro.factor
            and isinstance(site["value"], jax.core.Tracer)
        ):
            return None
    return model_trace


def inspect_model(
    model: Callable, data: Mapping[str, Any], rng_key: KeyLike
) -> ModelInfo:
    """Trace ``model(**data)`` once and describe its sites.

    Raises
    ------
    ModelError
        If the model cannot be run with ``data`` (the original error is chained).
    ValueError
        If an observed site holds NaN or inf, or values outside its support.
    """
    try:
        model_trace = _abstract_trace(model, rng_key, data)
    except Exception:  # noqa: BLE001 - the eager trace below reports the error
        model_trace = None
    if model_trace is None:
        try:
            model_trace = prototype_trace(model, resolve_key(rng_key), (), dict(data))
        except Exception as error:  # noqa: BLE001 - re-raised with context
            raise ModelError(
                f"model `{getattr(model, '__name__', model)}` failed when run with "
                f"the data keys {sorted(data)}: {type(error).__name__}: {error}. "
                "Check that the shapes and types in data match what the model "
                "expects."
            ) from error

    latent, continuous, discrete, enumerable = [], [], [], []
    observed, factors, deterministic = [], [], []
    observed_values, dims, shapes, supports = {}, {}, {}, {}
    subsampled = False
    for name, site in model_trace.items():
        if site["type"] == "plate":
            subsampled |= int(np.prod(np.shape(site["value"]))) < int(site["args"][0])
        if site["type"] == "deterministic":
            deterministic.append(name)
            dims[name] = _site_dims(name, site)
        if site["type"] != "sample":
            continue
        dims[name] = _site_dims(name, site)
        fn = site["fn"]
        if site["is_observed"]:
            if type(fn).__name__ == "Unit":
                factors.append(name)
            else:
                observed.append(name)
                observed_values[name] = np.asarray(site["value"])
            continue
        latent.append(name)
        shapes[name] = tuple(np.shape(site["value"]))
        supports[name] = fn.support
        if fn.is_discrete:
            discrete.append(name)
            if fn.has_enumerate_support:
                enumerable.append(name)
        else:
            continuous.append(name)

    nan_ok = missing_ok_arguments(model)
    check_finite_observations(observed_values, nan_ok)
    check_observed_support(model_trace, nan_ok)
    return ModelInfo(
        latent_sites=tuple(latent),
        continuous_sites=tuple(continuous),
        discrete_sites=tuple(discrete),
        enumerable_sites=tuple(enumerable),
        observed_sites=tuple(observed),
        factor_sites=tuple(factors),
        deterministic_sites=tuple(deterministic),
        observed_values=observed_values,
        dims=dims,
        shapes=shapes,
        supports=supports,
        max_plate_nesting=_guess_max_plate_nesting(model_trace),
        subsampled=subsampled,
    )


class uncondition(Messenger):
    """Sample the named observed sites instead of conditioning on their values."""

    def __init__(self, fn: Callable | None = None, sites: tuple[str, ...] = ()):
        self.sites = frozenset(sites)
        super().__init__(fn)

    def process_message(self, msg: dict) -> None:
        """Drop the observation of a named site so that it is drawn."""
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.sites:
            msg["value"] = None
            msg["is_observed"] = False


def enumerated(model: Callable, sites: tuple[str, ...]) -> Callable:
    """Mark the named discrete sites for parallel enumeration (summed out)."""
    if not sites:
        return model
    names = frozenset(sites)

    def config(site: dict) -> dict:
        if site["name"] in names and site["infer"].get("enumerate") is None:
            return {"enumerate": "parallel"}
        return {}

    return handlers.infer_config(model, config_fn=config)


def split_data(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``data`` into arrays (traced by JAX) and static configuration.

    NumPy and JAX arrays are data, passed to compiled programs as arguments; every
    other value (Python numbers used as sizes, strings, functions) is static and
    becomes part of the program.
    """
    dynamic = {k: v for k, v in data.items() if isinstance(v, np.ndarray | jax.Array)}
    static = {k: v for k, v in data.items() if k not in dynamic}
    return dynamic, static
