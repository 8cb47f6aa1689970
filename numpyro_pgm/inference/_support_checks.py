"""Observed sites' support checks as one flag per site, outside the sampler's loop.

NumPyro validates distributions by default: ``log_prob(value)`` is
``where(support(value), log_prob, -inf)``, applied by every distribution on the
way down. For an observed site of a mixture (``MixtureSameFamily``), the check of
the data is broadcast against each component, inside the fused loops that compute
the component densities and their gradient, and XLA's CPU code for those loops
slows down 2.5-4x (measured: 4.5 against 12 microseconds per gradient on the
1,000-point mixture of ``benchmarks/nuts_cpu.py``). NumPyro itself escapes this
only because its ``MCMC`` bakes the data into the program as constants, which
folds the check away, at the price of compiling again for every new data set.

Inside inference objectives (the potential energy of MCMC, the ELBO, the Laplace
objective), the value of an observed site's log density only enters through its
sum. :func:`hoist_observed_checks` therefore replaces the distribution of each
observed site built from NumPyro's own distributions (a user-defined one may
treat out-of-support values, NaN as missing for instance, its own way, and is
left alone) by one that

- evaluates the log density with validation off (all nested distributions), and
- returns it where every observed value lies in the support, and ``-inf``
  everywhere otherwise (masked-out values excepted, as NumPyro does).

The sum is then NumPyro's where the data are valid (up to the float rounding of
a differently fused program) and ``-inf`` where they are not; the check depends on
the data only, so XLA computes it once, before the loop. Pointwise
log-likelihoods and predictive draws keep NumPyro's elementwise semantics: they
do not use this wrapper.
"""

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution
from numpyro.distributions.distribution import (
    ExpandedDistribution,
    Independent,
    MaskedDistribution,
    Unit,
)
from numpyro.primitives import Messenger

__all__ = ["check_observed_support", "hoist_observed_checks"]


def _nested(distribution: Distribution) -> Iterator[Distribution]:
    """Yield the distributions held by ``distribution`` (components, base, ...)."""
    for value in vars(distribution).values():
        if isinstance(value, Distribution):
            yield value
        elif isinstance(value, list | tuple):
            yield from (v for v in value if isinstance(v, Distribution))


def _numpyro_only(distribution: Distribution) -> bool:
    """Whether ``distribution`` and all inside it are NumPyro's own classes.

    Those validate exactly their support (by ``validate_sample`` or through the
    distributions they hold). A user-defined distribution may do otherwise (for
    example, give NaN, a missing value, a log density of 0), so its site is left
    as it is.
    """
    return type(distribution).__module__.startswith("numpyro.distributions") and all(
        _numpyro_only(inner) for inner in _nested(distribution)
    )


def _without_validation(distribution: Distribution) -> Distribution:
    """Copy ``distribution`` and the distributions inside it, unvalidated."""
    unchecked = copy.copy(distribution)
    unchecked._validate_args = False
    for name, value in vars(distribution).items():
        if isinstance(value, Distribution):
            setattr(unchecked, name, _without_validation(value))
        elif isinstance(value, list | tuple) and any(
            isinstance(v, Distribution) for v in value
        ):
            copies = (
                _without_validation(v) if isinstance(v, Distribution) else v
                for v in value
            )
            setattr(unchecked, name, type(value)(copies))
    return unchecked


def _in_support(distribution: Distribution, value: Any, xp: Any = jnp) -> Any:
    """Where ``value`` is valid for ``distribution``, over its batch shape.

    Masked-out entries count as valid (NumPyro gives them log density 0 whatever
    the value); through ``Independent``, a batch entry is valid when all its
    reinterpreted entries are. ``xp`` is ``jax.numpy`` inside traced programs and
    NumPy for concrete data (NumPyro's constraints then compute in NumPy too, so
    nothing is compiled).
    """
    if isinstance(distribution, MaskedDistribution):
        mask = distribution._mask
        if mask is False:
            return xp.asarray(True)
        inner = _in_support(distribution.base_dist, value, xp)
        return inner if mask is True else inner | ~mask
    if isinstance(distribution, Independent):
        inner = _in_support(distribution.base_dist, value, xp)
        dims = distribution.reinterpreted_batch_ndims
        if xp.ndim(inner) < dims:
            return xp.all(inner)
        return xp.all(inner, axis=tuple(range(-dims, 0)))
    if isinstance(distribution, ExpandedDistribution):
        return _in_support(distribution.base_dist, value, xp)
    return distribution.support(value)


class _CheckedOnce(Distribution):
    """``base_dist`` with its support checks reduced to one flag (see module)."""

    pytree_data_fields = ("base_dist", "_unchecked")

    def __init__(self, base_dist: Distribution) -> None:
        self.base_dist = base_dist
        self._unchecked = _without_validation(base_dist)
        super().__init__(
            base_dist.batch_shape, base_dist.event_shape, validate_args=False
        )

    @property
    def support(self) -> Any:
        return self.base_dist.support

    @property
    def is_discrete(self) -> bool:
        return self.base_dist.is_discrete

    @property
    def has_enumerate_support(self) -> bool:
        return self.base_dist.has_enumerate_support

    def enumerate_support(self, expand: bool = True) -> jax.Array:
        return self.base_dist.enumerate_support(expand=expand)

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        return self.base_dist.sample(key, sample_shape)

    def log_prob(self, value: jax.Array) -> jax.Array:
        value = jnp.asarray(value)  # constraints pick NumPy for NumPy values
        valid = jnp.all(_in_support(self.base_dist, value))
        return jnp.where(valid, self._unchecked.log_prob(value), -jnp.inf)


def _checkable(site: Mapping[str, Any]) -> bool:
    """Whether ``site`` is observed, by a distribution of NumPyro's own classes."""
    fn = site.get("fn")
    return (
        site["type"] == "sample"
        and site["is_observed"]
        and isinstance(fn, Distribution)
        and not isinstance(fn, Unit | _CheckedOnce)
        and _numpyro_only(fn)
    )


class _HoistObservedChecks(Messenger):
    def process_message(self, msg: dict) -> None:
        if _checkable(msg) and msg["fn"]._validate_args:
            msg["fn"] = _CheckedOnce(msg["fn"])


def hoist_observed_checks(model: Callable) -> Callable:
    """Wrap ``model`` so each observed site checks its support once (see module).

    Apply it outermost, around every handler the model needs for inference
    (enumeration configuration, conditioning), so that it sees each observed
    site's final distribution, masks and plates included.
    """
    return _HoistObservedChecks(model)


def _outside_support(
    fn: Distribution, value: Any, allow_nan: bool
) -> np.ndarray | None:
    """Where concrete observations lie outside ``fn``'s support (batch shape).

    ``None`` when the check cannot be made on concrete values: the value is
    computed inside the model, or the support depends on the model's parameters
    (``Uniform(0, theta)``), which the sampler's log density handles.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    value = np.asarray(value)
    try:
        valid = _in_support(fn, value, np)
    except (jax.errors.JAXTypeError, NotImplementedError, TypeError):
        return None
    if isinstance(valid, jax.core.Tracer):
        return None
    valid = np.asarray(valid, dtype=bool)
    if allow_nan and value.dtype.kind in "fc":
        event_axes = tuple(range(value.ndim - len(fn.event_shape), value.ndim))
        valid = valid | np.any(np.isnan(value), axis=event_axes)
    return ~valid


def check_observed_support(
    model_trace: Mapping[str, dict], nan_ok_sites: Iterable[str] = ()
) -> None:
    """Raise ``ValueError`` if observed data lie outside their site's support.

    Such data give the log density ``-inf`` at every parameter value: the
    posterior does not exist, and a sampler only diverges. Entries a site masks
    out are not checked; in sites whose argument may hold NaN as a missing value
    (:func:`numpyro_pgm.allow_missing`), NaN entries are not checked either; nor
    are sites with a user-defined distribution, which may read some values its
    own way.
    """
    nan_ok = set(nan_ok_sites)
    for name, site in model_trace.items():
        if not _checkable(site):
            continue
        fn = site["fn"]
        outside = _outside_support(fn, site["value"], allow_nan=name in nan_ok)
        if outside is None or not outside.any():
            continue
        where = [tuple(index) for index in np.argwhere(outside)[:3].tolist()]
        value = np.asarray(site["value"])
        value = np.broadcast_to(value, (*outside.shape, *value.shape[outside.ndim :]))
        examples = [value[index].tolist() for index in where]
        base = fn
        while isinstance(base, ExpandedDistribution | Independent | MaskedDistribution):
            base = base.base_dist
        raise ValueError(
            f"the observed site {name!r} has {int(outside.sum())} value(s) outside "
            f"the support {fn.support!r} of its distribution "
            f"{type(base).__name__}: first at index {where}, value(s) {examples}. "
            "The log density is -inf at every parameter value there, so there is no "
            "posterior. Correct the data (for example, counts must be non-negative "
            "integers, binary outcomes 0 or 1), or choose a likelihood whose "
            "support holds them."
        )
