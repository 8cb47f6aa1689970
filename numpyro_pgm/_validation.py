"""Validation at the boundary: keys, models, data and guides.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind,
wrong value) with a message that names the argument, the value received, what is
allowed, and how to fix it.
"""

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "allow_missing",
    "check_data",
    "check_finite_observations",
    "check_guide_signature",
    "check_model",
    "check_rng_key",
    "missing_ok_arguments",
]

_MISSING_ATTRIBUTE = "__numpyro_pgm_allow_missing__"

MSG_RNG_KEY = (
    "rng_key must be a JAX PRNG key such as `jax.random.key(0)` (or the legacy "
    "`jax.random.PRNGKey(0)`); got {received}."
)


def check_rng_key(rng_key: Any) -> jax.Array:
    """Return ``rng_key`` if it is a single JAX PRNG key, else raise ``TypeError``."""
    if isinstance(rng_key, jax.Array):
        if jnp.issubdtype(rng_key.dtype, jax.dtypes.prng_key) and rng_key.shape == ():
            return rng_key
        if rng_key.dtype == jnp.uint32 and rng_key.shape == (2,):
            return rng_key
        received = f"an array of dtype {rng_key.dtype} and shape {rng_key.shape}"
    else:
        received = f"{type(rng_key).__name__} {rng_key!r}"[:120]
    raise TypeError(MSG_RNG_KEY.format(received=received))


def check_model(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is a callable NumPyro model."""
    if not callable(model):
        raise TypeError(
            f"model must be a NumPyro model function; got {type(model).__name__} "
            f"{model!r}. Pass the function itself, e.g. `fit(key, my_model, ...)`, "
            "not the result of calling it."
        )


def allow_missing(*argument_names: str) -> Callable[[Callable], Callable]:
    """Declare which model arguments may hold NaN as a missing-value marker.

    ``fit`` rejects NaN in ``data`` because a NaN observation silently gives a NaN
    posterior. A model that handles missing values itself (for example a Kalman filter
    that skips missing time points) opts out for the arguments it names.

    Parameters
    ----------
    *argument_names : str
        Names of the model's keyword arguments in which NaN marks a missing value.

    Returns
    -------
    Callable
        A decorator that marks the model and returns it unchanged.

    Examples
    --------
    >>> import numpyro_pgm as pgm
    >>> @pgm.allow_missing("y")
    ... def model(y=None):
    ...     pass
    >>> pgm.missing_ok_arguments(model)
    ('y',)
    """

    def mark(model: Callable) -> Callable:
        setattr(model, _MISSING_ATTRIBUTE, tuple(argument_names))
        return model

    return mark


def missing_ok_arguments(model: Callable) -> tuple[str, ...]:
    """Return the arguments a model declared with :func:`allow_missing`."""
    return tuple(getattr(model, _MISSING_ATTRIBUTE, ()))


def _signature(function: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _function_name(function: Callable) -> str:
    return getattr(function, "__name__", type(function).__name__)


def check_data(model: Callable, data: Any) -> dict[str, Any]:
    """Check ``data`` against the model's signature and reject non-finite values.

    Parameters
    ----------
    model : callable
        The NumPyro model.
    data : mapping or None
        The model's keyword arguments.

    Returns
    -------
    dict
        A shallow copy of ``data``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TypeError(
            f"data must be a mapping of the model's keyword arguments, e.g. "
            f"data={{'x': x}}; got {type(data).__name__}."
        )
    data = dict(data)
    bad_keys = [key for key in data if not isinstance(key, str)]
    if bad_keys:
        raise TypeError(f"data keys must be strings; got {bad_keys!r}.")

    signature = _signature(model)
    if signature is not None:
        parameters = signature.parameters
        accepts_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        )
        named = [
            name
            for name, p in parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
        ]
        if not accepts_any:
            unknown = [key for key in data if key not in named]
            if unknown:
                raise ValueError(
                    f"data has key(s) {unknown} that model `{_function_name(model)}` "
                    f"does not take; it takes {named}. Rename or drop them."
                )
        missing = [
            name
            for name, p in parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and name not in data
        ]
        if missing:
            raise ValueError(
                f"model `{_function_name(model)}` requires argument(s) {missing} "
                f"with no default, but data does not provide them. Add them to data, "
                f"e.g. data={{{missing[0]!r}: ...}}."
            )

    nan_ok = set(missing_ok_arguments(model))
    for key, value in data.items():
        _check_finite_value(f"data[{key!r}]", value, allow_nan=key in nan_ok)
    return data


def _as_numeric_array(value: Any) -> np.ndarray | None:
    if isinstance(value, (bool, str, bytes)) or value is None or callable(value):
        return None
    if isinstance(value, (int, float, complex, np.ndarray, np.generic, jax.Array)):
        array = np.asarray(value)
    elif isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            return None
    else:
        return None
    if array.dtype.kind not in "biufc":
        return None
    return array


def _check_finite_value(label: str, value: Any, *, allow_nan: bool) -> None:
    array = _as_numeric_array(value)
    if array is None or array.dtype.kind not in "fc":
        return
    num_nan = int(np.isnan(array).sum())
    num_inf = int(np.isinf(array).sum())
    if allow_nan and num_nan and num_nan == array.size:
        # The model is traced abstractly, so its own check of concrete data never
        # runs: an all-missing argument must be caught here.
        raise ValueError(
            f"{label} has no observed value: all {num_nan} entries are NaN (NaN "
            "marks a missing value), so the likelihood is constant and the data say "
            "nothing. Pass at least one observation; to draw from the model without "
            "data, leave the argument out."
        )
    if num_inf or (num_nan and not allow_nan):
        where = np.argwhere(~np.isfinite(array))[:3].tolist()
        raise ValueError(
            f"{label} contains {num_nan} NaN and {num_inf} infinite value(s) "
            f"(first at index {where}); a non-finite observation gives a NaN "
            "posterior. Remove or impute those entries, or, if the model treats NaN "
            "as missing, mark the argument with `@numpyro_pgm.allow_missing(...)`."
        )


def check_finite_observations(
    observed: Mapping[str, Any], nan_ok_sites: Iterable[str] = ()
) -> None:
    """Raise ``ValueError`` if an observed site of the model holds NaN or inf."""
    nan_ok = set(nan_ok_sites)
    for name, value in observed.items():
        _check_finite_value(
            f"the observed site {name!r}", value, allow_nan=name in nan_ok
        )


def check_guide_signature(model: Callable, guide: Callable) -> None:
    """Raise ``ValueError`` unless ``guide`` takes exactly the model's arguments."""
    model_signature, guide_signature = _signature(model), _signature(guide)
    if model_signature is None or guide_signature is None:
        return

    def shape(signature: inspect.Signature) -> list[tuple[str, Any]]:
        return [(name, p.kind) for name, p in signature.parameters.items()]

    if shape(model_signature) != shape(guide_signature):
        raise ValueError(
            f"guide `{_function_name(guide)}{guide_signature}` must take the same "
            f"arguments as model `{_function_name(model)}{model_signature}`; NumPyro "
            "calls both with the same data. Give the guide the model's signature."
        )
