"""Input validation for the LDA modules: count matrices, sizes, hyperparameters.

Every check raises ``ValueError`` naming the argument, the value received, what is
allowed and how to fix it. Checks of values run only on concrete arrays; inside
``jit`` (traced values) only shapes are checked.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["check_counts", "check_num_topics"]

Array = jax.Array

MSG_COUNTS_NDIM = (
    "{name} must be a 2-D array shaped (num_documents, vocab_size); got shape "
    "{shape}. Pass one row per document and one column per vocabulary word."
)
MSG_COUNTS_INTEGER = (
    "{name} must hold non-negative integer counts; got {what} (first at row {row}, "
    "column {column}: {value!r}). Pass raw word counts, not frequencies or weights."
)
MSG_EMPTY_DOCUMENT = (
    "{name} has {count} empty document(s) (rows with no tokens; first at row {row}). "
    "LDA needs at least one token per document: drop those rows, e.g. "
    "counts[counts.sum(1) > 0]."
)
MSG_NUM_TOPICS = (
    "num_topics must be an integer of at least 2; got {value!r}. A single topic is "
    "a unigram model; pass num_topics=2 or more."
)
MSG_SIZE = "{name} must be {what}; got {value!r}. {fix}"
MSG_CONCENTRATION = (
    "{name} must be positive, a scalar or of shape ({size},) (one per {per}); got "
    "{value!r}. Pass e.g. {name}={example}."
)


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def check_counts(counts: ArrayLike, name: str = "counts") -> Array:
    """Validate a document-term count matrix and return it as a JAX array.

    Raises ``ValueError`` naming ``name`` for a non 2-D array, negative, non-integer
    or non-finite entries, and empty documents. Traced values are only shape-checked.
    """
    counts = jnp.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(MSG_COUNTS_NDIM.format(name=name, shape=counts.shape))
    if _is_concrete(counts):
        values = np.asarray(counts)
        if values.dtype.kind not in "biu":
            if values.dtype.kind != "f":
                raise ValueError(
                    MSG_COUNTS_INTEGER.format(
                        name=name,
                        what=f"dtype {values.dtype}",
                        row=0,
                        column=0,
                        value=values.flat[0] if values.size else None,
                    )
                )
            bad = ~np.isfinite(values) | (values != np.round(values))
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise ValueError(
                    MSG_COUNTS_INTEGER.format(
                        name=name,
                        what=f"{int(bad.sum())} non-integer entries",
                        row=row,
                        column=column,
                        value=float(values[row, column]),
                    )
                )
        negative = values < 0
        if negative.any():
            row, column = np.argwhere(negative)[0]
            raise ValueError(
                MSG_COUNTS_INTEGER.format(
                    name=name,
                    what=f"{int(negative.sum())} negative entries",
                    row=row,
                    column=column,
                    value=values[row, column].item(),
                )
            )
        empty = values.sum(axis=1) == 0
        if empty.any():
            raise ValueError(
                MSG_EMPTY_DOCUMENT.format(
                    name=name, count=int(empty.sum()), row=int(np.argmax(empty))
                )
            )
    return counts


def check_num_topics(num_topics: Any) -> int:
    """Return ``num_topics`` as an int, or raise ``ValueError`` unless it is >= 2."""
    if (
        isinstance(num_topics, bool)
        or not isinstance(num_topics, int | np.integer)
        or num_topics < 2
    ):
        raise ValueError(MSG_NUM_TOPICS.format(value=num_topics))
    return int(num_topics)


def _check_size(name: str, value: Any, actual: int | None, source: str) -> int:
    """Check a size argument against the size read from the data (if any)."""
    if actual is not None:
        if value is not None and value != actual:
            raise ValueError(
                MSG_SIZE.format(
                    name=name,
                    what=f"equal to {source} ({actual})",
                    value=value,
                    fix=f"Leave {name}=None when {source.split('.')[0]} is given, "
                    "or pass data of the matching size.",
                )
            )
        return int(actual)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            MSG_SIZE.format(
                name=name,
                what="a positive integer",
                value=value,
                fix=f"Pass {name} as a positive int (it cannot be read from the "
                "data here).",
            )
        )
    return int(value)


def _check_doc_lengths(doc_lengths: Any, num_documents: int | None) -> Array:
    lengths = jnp.asarray(doc_lengths)
    if lengths.ndim != 1 or (
        num_documents is not None and lengths.size != num_documents
    ):
        expected = (
            "(num_documents,)" if num_documents is None else f"({num_documents},)"
        )
        raise ValueError(
            f"doc_lengths must have shape {expected}; got shape {lengths.shape}. "
            "Pass one token count per document."
        )
    if _is_concrete(lengths):
        values = np.asarray(lengths)
        if values.dtype.kind not in "biu" or np.any(values < 1):
            raise ValueError(
                f"doc_lengths must hold positive integers (no empty document); got "
                f"{values!r}. Pass the number of tokens of each document."
            )
    return lengths


def _concentrations(
    num_topics: int,
    vocab_size: int,
    topic_concentration: Any,
    word_concentration: Any,
) -> tuple[Array, Array]:
    r"""Return :math:`\alpha` (num_topics,) and :math:`\eta` (vocab_size,).

    ``None`` gives :math:`1/K` for both, scikit-learn's defaults.
    """
    out = []
    for name, value, size, per in (
        ("topic_concentration", topic_concentration, num_topics, "topic"),
        ("word_concentration", word_concentration, vocab_size, "vocabulary word"),
    ):
        value = 1.0 / num_topics if value is None else value
        array = jnp.asarray(value, dtype=jnp.result_type(float))
        bad_shape = array.shape not in ((), (size,))
        bad_value = _is_concrete(array) and not np.all(np.asarray(array) > 0)
        if bad_shape or bad_value:
            raise ValueError(
                MSG_CONCENTRATION.format(
                    name=name, size=size, per=per, value=value, example=0.1
                )
            )
        out.append(jnp.broadcast_to(array, (size,)))
    return out[0], out[1]


def _corpus(
    counts: ArrayLike | None, doc_lengths: Any, vocab_size: Any
) -> tuple[Array | None, Array, int, int]:
    """Validate the collapsed model's data: ``(counts, lengths, D, V)``."""
    if counts is not None:
        counts = check_counts(counts)
        num_documents, actual_vocab = counts.shape
        vocab_size = _check_size(
            "vocab_size", vocab_size, actual_vocab, "counts.shape[1]"
        )
        lengths = counts.sum(axis=-1)
        if doc_lengths is not None:
            given = _check_doc_lengths(doc_lengths, num_documents)
            if _is_concrete(given) and _is_concrete(lengths):
                if not np.array_equal(np.asarray(given), np.asarray(lengths)):
                    raise ValueError(
                        "doc_lengths must equal counts.sum(1) when both are given; "
                        "they differ. Leave doc_lengths=None with counts."
                    )
        return counts, lengths, int(num_documents), vocab_size
    if doc_lengths is None:
        raise ValueError(
            "doc_lengths must be given when counts is None (the model then samples "
            "the corpus); got None. Pass doc_lengths=np.array([...]) with one token "
            "count per document."
        )
    lengths = _check_doc_lengths(doc_lengths, None)
    vocab_size = _check_size("vocab_size", vocab_size, None, "")
    return None, lengths, int(lengths.shape[0]), vocab_size
