"""Validation of matrix factorisation inputs, shared by the model and algorithms.

Every check names the argument, the value received, what is allowed and how to fix
it; value checks run only on concrete arrays, so the model stays ``jit``-safe.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_ratings"]

Array = jax.Array

MSG_INDEX = (
    "{name} must hold integer codes in [0, {size_name}={size}); found values from "
    "{low} to {high} (first bad entry at position {position}). Recode the ids to "
    "0..{size_name}-1 (e.g. `np.unique(ids, return_inverse=True)`) or pass a "
    "larger {size_name}."
)
MSG_LENGTHS = (
    "user, item and rating must be 1-D arrays of the same length, one entry per "
    "observed rating; got shapes user {user}, item {item}, rating {rating}. Pass "
    "the observed entries in coordinate form: rating[n] is the rating of user[n] "
    "for item[n]."
)
MSG_RATING_FINITE = (
    "rating must be finite; got {count} NaN or inf value(s) (first at position "
    "{position}). The model uses the observed entries only, so drop missing "
    "ratings from user, item and rating instead of marking them NaN."
)
MSG_SIZE = (
    "{name} must be an integer >= 1{what}; got {value!r}. Pass e.g. {name}={example}."
)
MSG_SCALE = "{name} must be a finite positive number; got {value!r}. Pass e.g. 1.0."


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_size(name: str, value: Any, what: str, example: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            MSG_SIZE.format(name=name, what=what, value=value, example=example)
        )


def _check_scale(name: str, value: Any) -> None:
    if not _is_concrete(value):
        return
    array = np.asarray(value)
    if array.shape != () or not np.isfinite(array) or not array > 0:
        raise ValueError(MSG_SCALE.format(name=name, value=value))


def _check_index(name: str, value: Any, size_name: str, size: int) -> Array:
    if _is_concrete(value):
        array = np.asarray(value)
        if array.dtype.kind not in "iu":
            raise TypeError(
                f"{name} must be an integer array of codes; got dtype {array.dtype}. "
                f"Convert it, e.g. `{name}.astype(int)` (or recode with "
                "`np.unique(ids, return_inverse=True)`)."
            )
        bad = (array < 0) | (array >= size)
        if bad.any():
            raise ValueError(
                MSG_INDEX.format(
                    name=name,
                    size_name=size_name,
                    size=size,
                    low=int(array.min()),
                    high=int(array.max()),
                    position=int(np.argmax(bad)),
                )
            )
    return jnp.asarray(value)


def check_ratings(
    user: Any,
    item: Any,
    rating: Any,
    *,
    num_users: Any,
    num_items: Any,
    num_factors: Any,
) -> tuple[Array, Array, Array | None]:
    """Validate the coordinate-form ratings and sizes; return them as JAX arrays.

    Value checks (ranges, NaN) run only on concrete arrays, so the function is
    safe inside ``jit``; shape checks always run.

    Parameters
    ----------
    user, item : array_like of int, shape (num_ratings,)
        Codes in ``[0, num_users)`` and ``[0, num_items)``.
    rating : array_like of shape (num_ratings,) or None
        Finite ratings, or ``None`` (generative use).
    num_users, num_items, num_factors : int
        Positive sizes.

    Returns
    -------
    user, item, rating : Array
        The inputs as JAX arrays (``rating`` as floats, or ``None``).

    Raises
    ------
    ValueError
        For codes out of range, non-finite ratings, unequal lengths, empty input
        or sizes below 1, naming the argument, the value and the fix.
    TypeError
        For non-integer codes.

    Examples
    --------
    >>> from numpyro_pgm.models.matrix_factorization_checks import check_ratings
    >>> check_ratings([0, 3], [0, 1], [4.0, 5.0], num_users=3, num_items=2,
    ...               num_factors=1)
    Traceback (most recent call last):
    ...
    ValueError: user must hold integer codes in [0, num_users=3); found values \
from 0 to 3 (first bad entry at position 1). Recode the ids to 0..num_users-1 \
(e.g. `np.unique(ids, return_inverse=True)`) or pass a larger num_users.
    """
    _check_size("num_users", num_users, " (the number of users)", 100)
    _check_size("num_items", num_items, " (the number of items)", 100)
    _check_size("num_factors", num_factors, " (the rank K of U V^T)", 5)
    shapes = [np.shape(user), np.shape(item)]
    shapes.append(None if rating is None else np.shape(rating))
    lengths = {s[0] for s in shapes if s is not None and len(s) == 1}
    if any(s is not None and len(s) != 1 for s in shapes) or len(lengths) != 1:
        raise ValueError(
            MSG_LENGTHS.format(user=shapes[0], item=shapes[1], rating=shapes[2])
        )
    if next(iter(lengths)) == 0:
        raise ValueError(
            "user, item and rating are empty; the model needs at least one observed "
            "rating (or, to simulate, at least one (user, item) pair)."
        )
    user = _check_index("user", user, "num_users", num_users)
    item = _check_index("item", item, "num_items", num_items)
    if rating is not None:
        if _is_concrete(rating):
            array = np.asarray(rating, dtype=float)
            bad = ~np.isfinite(array)
            if bad.any():
                raise ValueError(
                    MSG_RATING_FINITE.format(
                        count=int(bad.sum()), position=int(np.argmax(bad))
                    )
                )
        rating = jnp.asarray(rating, dtype=jnp.result_type(float))
    return user, item, rating
