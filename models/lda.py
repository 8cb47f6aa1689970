r"""Latent Dirichlet allocation: the topic model of the seed notes.

For a corpus of :math:`D` documents over a vocabulary of :math:`V` words and
:math:`K` topics, the generative process is (seed ``003_02afaf35b30b64a9.txt``,
§3.5, Fig. 3.11)

.. math::

    \beta_k &\sim \mathrm{Dirichlet}(\eta), \qquad k = 1, \dots, K, \\
    \theta_d &\sim \mathrm{Dirichlet}(\alpha), \qquad d = 1, \dots, D, \\
    z_{dn} \mid \theta_d &\sim \mathrm{Categorical}(\theta_d), \qquad
        n = 1, \dots, N_d, \\
    w_{dn} \mid z_{dn}, \beta &\sim \mathrm{Categorical}(\beta_{z_{dn}}).

The module gives this model in two forms with the same priors:

* :func:`token_model`, token by token with the topic assignments :math:`z_{dn}`
  explicit (marked for enumeration, so NUTS and ``TraceEnum_ELBO`` sum them out);
* :func:`model`, the collapsed form on the document-term count matrix
  :math:`c_{dv} = \#\{n : w_{dn} = v\}`. Summing :math:`z_{dn}` out gives
  :math:`p(w_{dn} = v \mid \theta_d, \beta) = \sum_k \theta_{dk} \beta_{kv}`, and
  since the tokens of a document are exchangeable given :math:`\theta_d`,

  .. math::

      c_d \mid \theta_d, \beta \sim \mathrm{Multinomial}(N_d,\; \theta_d^\top \beta).

  Its log density is the token model's marginal plus the log multinomial
  coefficient :math:`\log N_d! - \sum_v \log c_{dv}!`, a constant. This is the form
  for NUTS, for minibatch SVI (``subsample_size``) and for large corpora: its cost
  grows with :math:`D V K`, not with the number of tokens times :math:`K`.

Sites and plates: ``beta`` (plate ``topic``; event dimension ``vocab``), ``theta``
(plate ``document``; event dimension ``topic``), ``counts`` (plate ``document``;
event dimension ``vocab``) in :func:`model`; ``z`` and ``words`` (plates ``word`` x
``document``) in :func:`token_model`. :data:`DIMS` names every dimension, for
``pgm.fit(..., dims=lda.DIMS)``.

Companion modules: :mod:`numpyro_pgm.models.lda_guides` (the seed's mean-field
guide and an amortised encoder guide), :mod:`numpyro_pgm.models.lda_cavi` (the
seed's CAVI updates), :mod:`numpyro_pgm.models.lda_metrics` (perplexity,
coherence, label agreement, topic matching) and
:mod:`numpyro_pgm.models.lda_checks` (input validation).

Inputs are checked when they are concrete (outside ``jit``): counts must be a 2-D
array of non-negative integers with no empty document, ``num_topics`` an integer
of at least 2, and the sizes must agree with the data.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5 (Latent Dirichlet Allocation, Remark 3.15).
.. [2] D. M. Blei, A. Y. Ng and M. I. Jordan, "Latent Dirichlet allocation",
   JMLR 3 (2003), 993-1022.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.ops.indexing import Vindex

from .lda_checks import (
    _check_doc_lengths,
    _check_size,
    _concentrations,
    _corpus,
    _is_concrete,
    check_counts,
    check_num_topics,
)

__all__ = [
    "DIMS",
    "counts_to_tokens",
    "model",
    "simulate",
    "token_model",
    "tokens_to_counts",
]

Array = jax.Array

DIMS: dict[str, tuple[str, ...]] = {
    "beta": ("topic", "vocab"),
    "theta": ("document", "topic"),
    "counts": ("document", "vocab"),
    "z": ("word", "document"),
    "words": ("word", "document"),
}
"""Dimension names of every site, for ``pgm.fit(..., dims=DIMS)``."""


def _sample_topics(num_topics: int, eta: Array) -> Array:
    r""":math:`\beta_k \sim \mathrm{Dirichlet}(\eta)` in the ``topic`` plate."""
    with numpyro.plate("topic", num_topics):
        return numpyro.sample("beta", dist.Dirichlet(eta))


def _max_length(lengths: Array) -> int | None:
    return int(np.max(np.asarray(lengths))) if _is_concrete(lengths) else None


def _word_probabilities(theta: Array, beta: Array) -> Array:
    r""":math:`p_{dv} = \sum_k \theta_{dk} \beta_{kv}` with entries floored at
    :math:`\epsilon = \text{tiny}^{3/4}` (about 1e-29 in float32).

    Dirichlet draws are clipped at the smallest normal float (tiny), so
    :math:`\partial \log p_{dv} / \partial \theta_{dk} \le 1/\theta_{dk}` can
    reach 1/tiny and overflow once scaled by a count and a minibatch factor. The
    floor bounds it by :math:`1/\epsilon`, with headroom :math:`10^8`; it moves
    :math:`p_{dv}` by at most :math:`K \epsilon` (below float resolution unless
    the word is essentially impossible anyway).
    """  # noqa: D205, D400
    floor = jnp.finfo(jnp.result_type(theta, beta)).tiny ** 0.75
    return jnp.matmul(jnp.maximum(theta, floor), jnp.maximum(beta, floor))


def model(
    counts: ArrayLike | None = None,
    *,
    num_topics: int,
    doc_lengths: ArrayLike | None = None,
    vocab_size: int | None = None,
    topic_concentration: ArrayLike | None = None,
    word_concentration: ArrayLike | None = None,
    subsample_size: int | None = None,
) -> None:
    r"""Collapsed LDA on a document-term count matrix (seed §3.5, :math:`z` summed).

    .. math::

        \beta_k \sim \mathrm{Dirichlet}(\eta), \quad
        \theta_d \sim \mathrm{Dirichlet}(\alpha), \quad
        c_d \mid \theta_d, \beta \sim \mathrm{Multinomial}(N_d,\;
        \theta_d^\top \beta).

    Parameters
    ----------
    counts : array_like of shape (num_documents, vocab_size), optional
        Word counts per document; ``None`` samples them (the model is generative).
    num_topics : int
        Number of topics :math:`K \ge 2`.
    doc_lengths : array_like of shape (num_documents,), optional
        Tokens per document :math:`N_d`; needed when ``counts`` is None (otherwise
        ``counts.sum(1)``).
    vocab_size : int, optional
        :math:`V` when ``counts`` is None; must equal ``counts.shape[1]`` otherwise.
    topic_concentration : float or array_like of shape (num_topics,), optional
        :math:`\alpha`, the Dirichlet concentration of each document's topic
        proportions; default :math:`1/K`.
    word_concentration : float or array_like of shape (vocab_size,), optional
        :math:`\eta`, the Dirichlet concentration of each topic's word distribution;
        default :math:`1/K`.
    subsample_size : int, optional
        Minibatch size of the ``document`` plate for stochastic VI; the likelihood
        is scaled by ``num_documents / subsample_size``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import lda
    >>> with handlers.seed(rng_seed=0):
    ...     trace = handlers.trace(lda.model).get_trace(
    ...         num_topics=3, doc_lengths=np.array([5, 7]), vocab_size=10)
    >>> counts = trace["counts"]["value"]
    >>> trace["beta"]["value"].shape, counts.sum(1).astype(int).tolist()
    ((3, 10), [5, 7])

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §3.5.
    .. [2] D. M. Blei, A. Y. Ng and M. I. Jordan, "Latent Dirichlet allocation",
       JMLR 3 (2003).
    """
    num_topics = check_num_topics(num_topics)
    counts, lengths, num_documents, vocab_size = _corpus(
        counts, doc_lengths, vocab_size
    )
    alpha, eta = _concentrations(
        num_topics, vocab_size, topic_concentration, word_concentration
    )
    total_count_max = _max_length(lengths)
    if counts is not None:
        counts = counts.astype(jnp.result_type(float))
    beta = _sample_topics(num_topics, eta)
    with numpyro.plate("document", num_documents, subsample_size=subsample_size):
        theta = numpyro.sample("theta", dist.Dirichlet(alpha))
        batch_lengths = numpyro.subsample(lengths, event_dim=0)
        batch_counts = (
            None if counts is None else numpyro.subsample(counts, event_dim=1)
        )
        # theta @ beta sums to one only up to float rounding, which for a large
        # vocabulary can exceed NumPyro's 1e-6 simplex tolerance; the counts are
        # validated above, so the distribution's own checks are off.
        numpyro.sample(
            "counts",
            dist.Multinomial(
                batch_lengths,
                probs=_word_probabilities(theta, beta),
                total_count_max=total_count_max,
                validate_args=False,
            ),
            obs=batch_counts,
        )


def token_model(
    words: ArrayLike | None = None,
    *,
    num_topics: int,
    doc_lengths: ArrayLike | None = None,
    vocab_size: int | None = None,
    topic_concentration: ArrayLike | None = None,
    word_concentration: ArrayLike | None = None,
) -> None:
    r"""Token-level LDA with explicit topic assignments (seed §3.5, Fig. 3.11).

    .. math::

        \beta_k \sim \mathrm{Dirichlet}(\eta), \quad
        \theta_d \sim \mathrm{Dirichlet}(\alpha), \quad
        z_{dn} \sim \mathrm{Categorical}(\theta_d), \quad
        w_{dn} \sim \mathrm{Categorical}(\beta_{z_{dn}}).

    Documents are padded to the longest one and stored word-major, as in Pyro's
    LDA example: ``words[n, d]`` is token :math:`n` of document :math:`d`, and
    the words :math:`n \ge N_d` are masked out (their :math:`z` keep the prior,
    which sums to one, so padding adds nothing). ``z`` is marked for parallel
    enumeration, so ``pgm.fit`` sums it out under NUTS and SVI and redraws it per
    draw afterwards.

    Parameters
    ----------
    words : array_like of int, shape (max_length, num_documents), optional
        Vocabulary indices of the tokens (padding entries must be valid indices,
        e.g. 0); ``None`` samples them. See :func:`counts_to_tokens`.
    num_topics : int
        Number of topics :math:`K \ge 2`.
    doc_lengths : array_like of shape (num_documents,), optional
        Tokens per document; default all ``max_length`` when ``words`` is given;
        required when ``words`` is None.
    vocab_size : int
        Vocabulary size :math:`V` (cannot be read from the tokens).
    topic_concentration, word_concentration : float or array_like, optional
        :math:`\alpha` (num_topics,) and :math:`\eta` (vocab_size,); default
        :math:`1/K`, as in :func:`model`.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import lda
    >>> with handlers.seed(rng_seed=0):
    ...     trace = handlers.trace(lda.token_model).get_trace(
    ...         num_topics=2, doc_lengths=np.array([3, 4]), vocab_size=6)
    >>> trace["z"]["value"].shape, trace["words"]["value"].shape
    ((4, 2), (4, 2))

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §3.5.
    """
    num_topics = check_num_topics(num_topics)
    vocab_size = _check_size("vocab_size", vocab_size, None, "")
    if words is not None:
        words = jnp.asarray(words)
        if words.ndim != 2 or not jnp.issubdtype(words.dtype, jnp.integer):
            raise ValueError(
                "words must be a 2-D integer array shaped (max_length, "
                f"num_documents); got dtype {words.dtype} and shape {words.shape}. "
                "Build it with lda.counts_to_tokens(counts)."
            )
        if _is_concrete(words) and (
            np.any(np.asarray(words) < 0) or np.any(np.asarray(words) >= vocab_size)
        ):
            raise ValueError(
                f"words must hold vocabulary indices in [0, vocab_size={vocab_size}); "
                f"got values from {int(words.min())} to {int(words.max())}. Pad with 0 "
                "and check vocab_size."
            )
        max_length, num_documents = words.shape
        if doc_lengths is None:
            lengths = jnp.full(num_documents, max_length)
        else:
            lengths = _check_doc_lengths(doc_lengths, num_documents)
    else:
        if doc_lengths is None:
            raise ValueError(
                "doc_lengths must be given when words is None; got None. Pass one "
                "token count per document."
            )
        lengths = _check_doc_lengths(doc_lengths, None)
        num_documents = int(lengths.shape[0])
        max_length = _max_length(lengths)
        if max_length is None:
            raise ValueError(
                "doc_lengths must be concrete (not traced) when words is None: the "
                "padded length is a shape."
            )
    alpha, eta = _concentrations(
        num_topics, vocab_size, topic_concentration, word_concentration
    )
    mask = jnp.arange(max_length)[:, None] < lengths[None, :]
    beta = _sample_topics(num_topics, eta)
    with numpyro.plate("document", num_documents, dim=-1):
        theta = numpyro.sample("theta", dist.Dirichlet(alpha))
        with numpyro.plate("word", max_length, dim=-2):
            # Only the words are masked: a masked enumerated z would contribute
            # log sum_k exp(0) = log K per padding slot; unmasked, its prior sums
            # to one and padding contributes nothing.
            z = numpyro.sample(
                "z", dist.Categorical(theta), infer={"enumerate": "parallel"}
            )
            with handlers.mask(mask=mask):
                numpyro.sample(
                    "words", dist.Categorical(Vindex(beta)[..., z, :]), obs=words
                )


def counts_to_tokens(counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Expand a count matrix to padded word-major tokens for :func:`token_model`.

    Parameters
    ----------
    counts : array_like of shape (num_documents, vocab_size)
        Word counts per document.

    Returns
    -------
    words : ndarray of int64, shape (max_length, num_documents)
        ``words[n, d]`` is the vocabulary index of token ``n`` of document ``d``
        (tokens sorted by word index; padding is 0).
    doc_lengths : ndarray of int64, shape (num_documents,)

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import lda
    >>> words, lengths = lda.counts_to_tokens(np.array([[2, 0, 1], [0, 1, 0]]))
    >>> words.T.tolist(), lengths.tolist()
    ([[0, 0, 2], [1, 0, 0]], [3, 1])
    """
    counts = np.asarray(check_counts(counts)).astype(np.int64)
    lengths = counts.sum(axis=1)
    words = np.zeros((int(lengths.max()), counts.shape[0]), dtype=np.int64)
    for d, row in enumerate(counts):
        tokens = np.repeat(np.arange(counts.shape[1]), row)
        words[: tokens.size, d] = tokens
    return words, lengths


def tokens_to_counts(
    words: ArrayLike, doc_lengths: ArrayLike, vocab_size: int
) -> np.ndarray:
    """Count matrix (num_documents, vocab_size) of padded word-major tokens.

    The inverse of :func:`counts_to_tokens` up to the order of tokens.
    """
    words, lengths = np.asarray(words), np.asarray(doc_lengths)
    mask = np.arange(words.shape[0])[:, None] < lengths[None, :]
    counts = np.zeros((words.shape[1], vocab_size), dtype=np.int64)
    documents = np.broadcast_to(np.arange(words.shape[1]), words.shape)
    np.add.at(counts, (documents[mask], words[mask]), 1)
    return counts


def simulate(
    rng_key: Array,
    *,
    num_documents: int,
    num_topics: int,
    vocab_size: int,
    doc_length: int | ArrayLike,
    topic_concentration: ArrayLike | None = None,
    word_concentration: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    theta: ArrayLike | None = None,
) -> dict[str, Array]:
    r"""Draw a corpus by ancestral sampling of :func:`token_model`.

    Samples :math:`\beta`, then per document :math:`\theta_d`, and per token
    :math:`z_{dn}` and :math:`w_{dn}` (seed §3.5), optionally holding ``beta`` and
    ``theta`` at given true values.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    num_documents, num_topics, vocab_size : int
        :math:`D`, :math:`K \ge 2` and :math:`V`.
    doc_length : int or array_like of shape (num_documents,)
        Tokens per document :math:`N_d` (one value for all, or one per document).
    topic_concentration, word_concentration : float or array_like, optional
        :math:`\alpha` and :math:`\eta` (default :math:`1/K`).
    beta : array_like of shape (num_topics, vocab_size), optional
        True topics; sampled from the prior when None.
    theta : array_like of shape (num_documents, num_topics), optional
        True topic proportions; sampled from the prior when None.

    Returns
    -------
    dict of str to Array
        ``beta`` (K, V), ``theta`` (D, K), ``z`` and ``words`` (max_length, D;
        padding 0), ``doc_lengths`` (D,) and ``counts`` (D, V).

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import lda
    >>> corpus = lda.simulate(jax.random.key(0), num_documents=4, num_topics=2,
    ...                       vocab_size=8, doc_length=10)
    >>> corpus["counts"].shape, corpus["counts"].sum(1).tolist()
    ((4, 8), [10, 10, 10, 10])
    """
    num_documents = _check_size("num_documents", num_documents, None, "")
    lengths = np.broadcast_to(np.asarray(doc_length), (num_documents,)).astype(np.int64)
    if np.asarray(doc_length).ndim > 1 or np.any(lengths < 1):
        raise ValueError(
            f"doc_length must be a positive integer or one per document; got "
            f"{doc_length!r}."
        )
    fixed = {}
    for name, value, shape in (
        ("beta", beta, (num_topics, vocab_size)),
        ("theta", theta, (num_documents, num_topics)),
    ):
        if value is None:
            continue
        array = np.asarray(value, dtype=np.float64)
        if array.shape != shape or np.any(array < 0):
            raise ValueError(
                f"{name} must be non-negative with shape {shape}; got shape "
                f"{array.shape}. Pass one probability vector per row."
            )
        if not np.allclose(array.sum(-1), 1.0, rtol=1e-5):
            raise ValueError(f"each row of {name} must sum to one. Normalise it.")
        fixed[name] = jnp.asarray(array, dtype=jnp.result_type(float))
    sampler = handlers.seed(handlers.condition(token_model, data=fixed), rng_key)
    trace = handlers.trace(sampler).get_trace(
        num_topics=num_topics,
        doc_lengths=lengths,
        vocab_size=vocab_size,
        topic_concentration=topic_concentration,
        word_concentration=word_concentration,
    )
    mask = jnp.arange(int(lengths.max()))[:, None] < jnp.asarray(lengths)[None, :]
    z = jnp.where(mask, trace["z"]["value"], 0)
    words = jnp.where(mask, trace["words"]["value"], 0)
    return {
        "beta": trace["beta"]["value"],
        "theta": trace["theta"]["value"],
        "z": z,
        "words": words,
        "doc_lengths": jnp.asarray(lengths),
        "counts": jnp.asarray(tokens_to_counts(words, lengths, vocab_size)),
    }
