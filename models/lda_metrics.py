r"""Evaluating topic models: perplexity, coherence, label agreement, matching.

* :func:`split_documents` and :func:`completion_perplexity`: held-out perplexity
  by document completion [2]_. Each test document's tokens are split at random
  into an observed and a held-out half; :math:`\hat\theta_d` is estimated from
  the observed half with the topics fixed (:func:`numpyro_pgm.models.lda_cavi.
  fold_in`), and the held-out half is scored,

  .. math::

      \mathrm{perplexity} = \exp\Bigl(-\frac{\sum_d \sum_v c^{\text{held}}_{dv}
      \log \sum_k \hat\theta_{dk} \hat\beta_{kv}}{\sum_d N^{\text{held}}_d}\Bigr).

  Lower is better; a model that ignores topics scores about the exponential of
  the unigram entropy.
* :func:`npmi_coherence`: the mean normalised pointwise mutual information of the
  top words of each topic [3]_, from document co-occurrence in a reference corpus,

  .. math::

      \mathrm{NPMI}(w_i, w_j) = \frac{\log \frac{P(w_i, w_j)}{P(w_i) P(w_j)}}
      {-\log P(w_i, w_j)} \in [-1, 1],

  with :math:`\mathrm{NPMI} = -1` for words that never co-occur.
* :func:`normalized_mutual_information`: agreement of two labelings (e.g. a
  document's most probable topic and a known category),
  :math:`\mathrm{NMI} = I(U; V) / \tfrac12 (H(U) + H(V))` (the arithmetic
  normalisation, scikit-learn's default).
* :func:`match_topics`: the permutation of estimated topics closest to reference
  topics (Hungarian algorithm on the total-variation distances), which removes
  label switching before comparing fits.
* :func:`top_words`: the most probable words of each topic.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5.
.. [2] H. M. Wallach, I. Murray, R. Salakhutdinov and D. Mimno, "Evaluation
   methods for topic models", ICML (2009).
.. [3] J. H. Lau, D. Newman and T. Baldwin, "Machine reading tea leaves:
   automatically evaluating topic coherence and topic model quality", EACL (2014).
.. [4] G. Bouma, "Normalized (pointwise) mutual information in collocation
   extraction", GSCL (2009).
"""

import jax
import numpy as np
from jax.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from .lda_cavi import fold_in
from .lda_checks import check_counts

__all__ = [
    "completion_perplexity",
    "match_topics",
    "normalized_mutual_information",
    "npmi_coherence",
    "split_documents",
    "top_words",
]

Array = jax.Array


def _check_topic_word(topic_word: ArrayLike, vocab_size: int | None = None):
    topic_word = np.asarray(topic_word, dtype=np.float64)
    if topic_word.ndim != 2:
        raise ValueError(
            f"topic_word must be 2-D, shaped (num_topics, vocab_size); got shape "
            f"{topic_word.shape}."
        )
    if vocab_size is not None and topic_word.shape[1] != vocab_size:
        raise ValueError(
            f"topic_word has {topic_word.shape[1]} columns but the vocabulary has "
            f"{vocab_size} words; the vocabulary must match the count matrix the "
            "topics were fitted on."
        )
    if np.any(topic_word < 0) or not np.allclose(topic_word.sum(1), 1.0, atol=1e-3):
        raise ValueError(
            "topic_word rows must be probability vectors (non-negative, summing to "
            "one); normalise, e.g. lam / lam.sum(1, keepdims=True)."
        )
    return topic_word


def split_documents(
    rng_key: Array, counts: ArrayLike, fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    r"""Split each document's tokens at random into an observed and a held-out part.

    Document :math:`d` keeps :math:`\lfloor f N_d \rfloor` of its tokens, chosen
    uniformly without replacement, in the observed part; the rest are held out.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key.
    counts : array_like of shape (num_documents, vocab_size)
        Word counts; every document needs at least 2 tokens.
    fraction : float
        Fraction :math:`f \in (0, 1)` of the tokens in the observed part.

    Returns
    -------
    observed, held_out : ndarray of int64, shape (num_documents, vocab_size)
        Two count matrices that add up to ``counts``, each with at least one token
        per document.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from numpyro_pgm.models import lda_metrics
    >>> counts = np.array([[3, 1, 0], [0, 2, 2]])
    >>> observed, held = lda_metrics.split_documents(jax.random.key(0), counts)
    >>> observed.sum(1).tolist(), (observed + held == counts).all()
    ([2, 2], np.True_)
    """
    counts = np.asarray(check_counts(counts)).astype(np.int64)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}.")
    lengths = counts.sum(1)
    keep = np.floor(fraction * lengths).astype(np.int64)
    if np.any(keep < 1) or np.any(keep >= lengths):
        row = int(np.argmax((keep < 1) | (keep >= lengths)))
        raise ValueError(
            f"counts row {row} has {lengths[row]} token(s), too few to split with "
            f"fraction={fraction}; every document needs tokens in both parts. Drop "
            "short documents from the test set."
        )
    document, word = np.nonzero(counts)
    repeats = counts[document, word]
    token_document = np.repeat(document, repeats)
    token_word = np.repeat(word, repeats)
    noise = np.asarray(jax.random.uniform(rng_key, (token_word.size,)))
    order = np.lexsort((noise, token_document))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size) - starts[token_document[order]]
    observed = np.zeros_like(counts)
    chosen = rank < keep[token_document]
    np.add.at(observed, (token_document[chosen], token_word[chosen]), 1)
    return observed, counts - observed


def completion_perplexity(
    topic_word: ArrayLike,
    observed: ArrayLike,
    held_out: ArrayLike,
    *,
    topic_concentration: ArrayLike | None = None,
    num_iterations: int = 200,
) -> float:
    r"""Held-out perplexity by document completion.

    .. math::

        \exp\Bigl(-\frac{\sum_{d,v} c^{\text{held}}_{dv} \log \sum_k
        \hat\theta_{dk} \hat\beta_{kv}}{\sum_{d,v} c^{\text{held}}_{dv}}\Bigr),
        \qquad \hat\theta_d = \mathbb{E}_q[\theta_d \mid c^{\text{obs}}_d,
        \hat\beta].

    Parameters
    ----------
    topic_word : array_like of shape (num_topics, vocab_size)
        Point estimate :math:`\hat\beta` of the topics (e.g. a posterior mean).
    observed, held_out : array_like of shape (num_documents, vocab_size)
        The two parts of the test documents (:func:`split_documents`).
    topic_concentration : float or array_like, optional
        :math:`\alpha` used to fold in :math:`\hat\theta_d` (default :math:`1/K`).
    num_iterations : int
        Maximum fold-in sweeps (:func:`numpyro_pgm.models.lda_cavi.fold_in`).

    Returns
    -------
    float
        The perplexity (per held-out token); lower is better.
    """
    observed = np.asarray(check_counts(observed, "observed"))
    held_out = np.asarray(check_counts(held_out, "held_out"))
    if observed.shape != held_out.shape:
        raise ValueError(
            f"observed and held_out must have the same shape; got {observed.shape} "
            f"and {held_out.shape}. Use the two outputs of split_documents."
        )
    topic_word = _check_topic_word(topic_word, observed.shape[1])
    gamma = np.asarray(
        fold_in(
            observed,
            topic_word,
            topic_concentration=topic_concentration,
            num_iterations=num_iterations,
        ),
        dtype=np.float64,
    )
    theta = gamma / gamma.sum(1, keepdims=True)
    document, word = np.nonzero(held_out)
    probs = np.einsum("ik,ik->i", theta[document], topic_word[:, word].T)
    log_lik = np.sum(held_out[document, word] * np.log(probs))
    return float(np.exp(-log_lik / held_out.sum()))


def npmi_coherence(
    topic_word: ArrayLike, counts: ArrayLike, *, num_words: int = 10
) -> np.ndarray:
    r"""Mean NPMI of the top ``num_words`` words of each topic.

    Parameters
    ----------
    topic_word : array_like of shape (num_topics, vocab_size)
        Topics (rows on the simplex).
    counts : array_like of shape (num_documents, vocab_size)
        Reference corpus; :math:`P(w)` and :math:`P(w_i, w_j)` are the fractions
        of its documents that contain the word(s).
    num_words : int
        Number of top words per topic (at least 2).

    Returns
    -------
    ndarray of shape (num_topics,)
        Average NPMI over the :math:`\binom{M}{2}` pairs of each topic's top
        words, in :math:`[-1, 1]`; higher is more coherent.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import lda_metrics
    >>> counts = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 1]])
    >>> topics = np.array([[0.5, 0.5, 0, 0], [0.5, 0, 0, 0.5]])
    >>> lda_metrics.npmi_coherence(topics, counts, num_words=2).round(3).tolist()
    [0.415, -0.292]
    """
    counts = np.asarray(check_counts(counts))
    topic_word = _check_topic_word(topic_word, counts.shape[1])
    if not isinstance(num_words, int) or not 2 <= num_words <= counts.shape[1]:
        raise ValueError(
            f"num_words must be an integer between 2 and vocab_size "
            f"({counts.shape[1]}); got {num_words!r}."
        )
    present = (counts > 0).astype(np.float64)
    num_documents = present.shape[0]
    top = np.argsort(-topic_word, axis=1, kind="stable")[:, :num_words]
    scores = np.empty(topic_word.shape[0])
    upper = np.triu_indices(num_words, k=1)
    for k, words in enumerate(top):
        occurs = present[:, words]
        p_single = occurs.mean(0)
        p_joint = (occurs.T @ occurs / num_documents)[upper]
        p_i, p_j = p_single[upper[0]], p_single[upper[1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            pmi = np.log(p_joint) - np.log(p_i) - np.log(p_j)
            npmi = pmi / -np.log(p_joint)
        npmi = np.where(p_joint == 0, -1.0, npmi)
        npmi = np.where(p_joint == 1, 1.0, npmi)
        scores[k] = npmi.mean()
    return scores


def normalized_mutual_information(
    labels_true: ArrayLike, labels_pred: ArrayLike
) -> float:
    r"""Normalised mutual information of two labelings of the same items.

    .. math::

        \mathrm{NMI}(U, V) = \frac{I(U; V)}{\tfrac12 (H(U) + H(V))},

    with the empirical joint distribution of the labels; 1 for identical
    partitions (up to renaming), 0 for independent ones. Two single-cluster
    labelings give 1.

    Parameters
    ----------
    labels_true, labels_pred : array_like of shape (num_items,)
        Integer (or any hashable) labels.

    Returns
    -------
    float

    Examples
    --------
    >>> from numpyro_pgm.models import lda_metrics
    >>> lda_metrics.normalized_mutual_information([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.ndim != 1 or labels_true.shape != labels_pred.shape:
        raise ValueError(
            f"labels_true and labels_pred must be 1-D of the same length; got "
            f"shapes {labels_true.shape} and {labels_pred.shape}."
        )
    _, u = np.unique(labels_true, return_inverse=True)
    _, v = np.unique(labels_pred, return_inverse=True)
    joint = np.zeros((u.max() + 1, v.max() + 1))
    np.add.at(joint, (u, v), 1.0)
    joint /= joint.sum()
    p_u, p_v = joint.sum(1), joint.sum(0)
    h_u = -np.sum(p_u * np.log(p_u))
    h_v = -np.sum(p_v * np.log(p_v))
    if h_u == 0.0 and h_v == 0.0:
        return 1.0
    nonzero = joint > 0
    mutual = np.sum(
        joint[nonzero] * np.log(joint[nonzero] / np.outer(p_u, p_v)[nonzero])
    )
    return float(max(mutual, 0.0) / (0.5 * (h_u + h_v)))


def match_topics(estimate: ArrayLike, reference: ArrayLike) -> np.ndarray:
    r"""Permutation of ``estimate``'s topics that best matches ``reference``.

    Minimises :math:`\sum_k \tfrac12 \| \hat\beta_{\sigma(k)} - \beta_k \|_1`
    (total variation) over permutations :math:`\sigma` with the Hungarian
    algorithm (``scipy.optimize.linear_sum_assignment``).

    Parameters
    ----------
    estimate, reference : array_like of shape (num_topics, vocab_size)
        Two sets of topics over the same vocabulary.

    Returns
    -------
    ndarray of int64, shape (num_topics,)
        ``perm`` such that ``estimate[perm]`` lines up with ``reference``.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import lda_metrics
    >>> ref = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> lda_metrics.match_topics(ref[::-1], ref).tolist()
    [1, 0]
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if estimate.ndim != 2 or estimate.shape != reference.shape:
        raise ValueError(
            f"estimate and reference must have the same 2-D shape (num_topics, "
            f"vocab_size); got {estimate.shape} and {reference.shape}."
        )
    cost = 0.5 * np.abs(reference[:, None, :] - estimate[None, :, :]).sum(-1)
    _, columns = linear_sum_assignment(cost)
    return columns.astype(np.int64)


def top_words(
    topic_word: ArrayLike, vocabulary: ArrayLike, *, num_words: int = 10
) -> list[list[str]]:
    """Return the ``num_words`` most probable words of each topic, most likely first.

    Parameters
    ----------
    topic_word : array_like of shape (num_topics, vocab_size)
        Topics (rows on the simplex).
    vocabulary : array_like of str, shape (vocab_size,)
        The word of each column; its length must match ``topic_word``.
    num_words : int
        Words per topic.

    Returns
    -------
    list of list of str

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import lda_metrics
    >>> lda_metrics.top_words(np.array([[0.1, 0.7, 0.2]]), ["a", "b", "c"],
    ...                       num_words=2)
    [['b', 'c']]
    """
    vocabulary = np.asarray(vocabulary)
    if vocabulary.ndim != 1:
        raise ValueError(
            f"vocabulary must be 1-D, one word per column; got shape "
            f"{vocabulary.shape}."
        )
    topic_word = _check_topic_word(topic_word, vocabulary.shape[0])
    if not isinstance(num_words, int) or num_words < 1:
        raise ValueError(f"num_words must be a positive integer; got {num_words!r}.")
    order = np.argsort(-topic_word, axis=1, kind="stable")[:, :num_words]
    return [[str(vocabulary[j]) for j in row] for row in order]
