"""Input checks of :mod:`numpyro_pgm.models.logistic` (concrete inputs only).

``X`` must be a finite 2-D array, ``y`` must hold 0/1 labels, one per row of ``X``,
no column of ``X`` may be constant when ``y`` is observed (it would duplicate the
intercept), and the scales must be positive. Traced values (inside ``jit``) are
not checked.
"""

from typing import Any

import jax
import numpy as np

MSG_NOT_BINARY = (
    "y must hold only the labels 0 and 1 (1 = the positive class); got the "
    "value(s) {values}. Encode the classes as 0/1, e.g. "
    "`y = (labels == positive_label).astype(int)`."
)
MSG_CONSTANT_COLUMN = (
    "X has constant column(s) {columns} (zero variance over the {num_points} "
    "points): such a column is confounded with the intercept b, which the model "
    "already has, and it cannot be standardised. Drop it, e.g. "
    "`X = np.delete(X, {columns}, axis=1)`, then standardise the remaining columns."
)
MSG_NON_FINITE = (
    "{name} contains {count} NaN or infinite value(s) (first at index {where}); "
    "the posterior would be NaN. Remove or impute those rows before fitting."
)
MSG_SCALE = (
    "{name} must be a positive, finite number (a prior standard deviation); got "
    "{value!r}. Pass e.g. {name}=1.0 (features standardised to unit variance)."
)


# ----------------------------------------------------------------------- validation


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_scale(name: str, value: Any) -> None:
    if not _is_concrete(value):
        return
    array = np.asarray(value)
    if array.shape != () or not np.isfinite(array) or not array > 0:
        raise ValueError(MSG_SCALE.format(name=name, value=value))


def _check_features(X: Any, name: str = "X") -> None:
    if not _is_concrete(X):
        return
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (num_points, num_features); got "
            f"shape {array.shape}. For a single feature use `{name}[:, None]`; for "
            f"a single point use `{name}[None, :]`."
        )
    bad = ~np.isfinite(array)
    if bad.any():
        where = np.argwhere(bad)[:3].tolist()
        raise ValueError(MSG_NON_FINITE.format(name=name, count=bad.sum(), where=where))


def _check_labels(y: Any, num_points: int) -> None:
    if not _is_concrete(y):
        return
    array = np.asarray(y)
    if array.shape != (num_points,):
        raise ValueError(
            f"y must have shape (num_points,) = ({num_points},), one label per row "
            f"of X; got shape {array.shape}. Check that X and y come from the same "
            "rows (and flatten a column vector with `y.ravel()`)."
        )
    values = np.unique(array)
    wrong = values[(values != 0) & (values != 1)]
    if wrong.size:
        raise ValueError(MSG_NOT_BINARY.format(values=wrong[:5].tolist()))


def _check_constant_columns(X: Any) -> None:
    if not _is_concrete(X):
        return
    array = np.asarray(X)
    if array.shape[0] < 2:
        return
    constant = np.flatnonzero(np.ptp(array, axis=0) == 0)
    if constant.size:
        raise ValueError(
            MSG_CONSTANT_COLUMN.format(
                columns=constant.tolist(), num_points=array.shape[0]
            )
        )


def _validate(X: Any, y: Any, prior_scale: Any, intercept_scale: Any) -> None:
    """Run the cheap checks on concrete inputs (shared by model and Newton)."""
    _check_scale("prior_scale", prior_scale)
    _check_scale("intercept_scale", intercept_scale)
    _check_features(X)
    if y is not None:
        _check_labels(y, np.shape(X)[0])
        _check_constant_columns(X)
