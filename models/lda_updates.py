r"""The mean-field updates and ELBO of LDA on a sparse count matrix (seed §3.5).

Building blocks of :mod:`numpyro_pgm.models.lda_cavi`. Tokens of the same word in
the same document share :math:`\phi`, so everything runs over the non-zero entries
:math:`c_{dv} > 0` of the count matrix (:class:`_Entries`, COO form).

The word- and document-level updates of the seed (eq. (3.17) and the one after it)
are computed without forming :math:`\phi` [2]_:

.. math::

    \phi_{dvk} = \frac{e^{\mathbb{E}\log\theta_{dk}} e^{\mathbb{E}\log\beta_{kv}}}
        {\sum_j e^{\mathbb{E}\log\theta_{dj}} e^{\mathbb{E}\log\beta_{jv}}}, \qquad
    \gamma_{dk} = \alpha_k + e^{\mathbb{E}\log\theta_{dk}} \sum_v
        \frac{c_{dv}}{\sum_j e^{\mathbb{E}\log\theta_{dj}}
        e^{\mathbb{E}\log\beta_{jv}}} e^{\mathbb{E}\log\beta_{kv}},

so a document step costs one exponential per :math:`(d, k)` (the
:math:`e^{\mathbb{E}\log\beta}` are computed once per sweep) instead of one per
:math:`(d, v, k)`: about 7x faster on CPU than a softmax over the entries. Both
exponentials are shifted by their maximum over :math:`k` (per document, per
word), which cancels in :math:`\phi` and keeps them in :math:`(0, 1]`.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5 (eqs. (3.15)-(3.17)).
.. [2] M. D. Hoffman, D. M. Blei and F. Bach, "Online learning for latent
   Dirichlet allocation", NeurIPS (2010), Algorithm 1 and §2.1.
"""

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, xlogy
from jax.typing import ArrayLike

from .lda_checks import check_counts

Array = jax.Array


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["document", "word", "count", "log_multinomial_coefficient"],
    meta_fields=["num_documents", "vocab_size"],
)
@dataclass(frozen=True)
class _Entries:
    """The non-zero entries of a count matrix, in COO form (sizes static).

    Entries are sorted by document (row-major order of ``np.nonzero``).
    """

    document: Array
    word: Array
    count: Array
    log_multinomial_coefficient: Array
    num_documents: int
    vocab_size: int


def _entries(counts: ArrayLike, dtype) -> _Entries:
    values = np.asarray(check_counts(counts)).astype(np.int64)
    document, word = np.nonzero(values)
    count = values[document, word]
    lengths = values.sum(1)
    coefficient = float(np.sum(gammaln(lengths + 1.0)) - np.sum(gammaln(count + 1.0)))
    return _Entries(
        jnp.asarray(document),
        jnp.asarray(word),
        jnp.asarray(count, dtype),
        jnp.asarray(coefficient, dtype),
        int(values.shape[0]),
        int(values.shape[1]),
    )


def _expected_log(concentration: Array) -> Array:
    r""":math:`\mathbb{E}[\log x]` under :math:`\mathrm{Dirichlet}` per row."""
    return digamma(concentration) - digamma(concentration.sum(-1, keepdims=True))


def _initial_gamma(entries: _Entries, alpha: Array) -> Array:
    r""":math:`\gamma_{dk} = \alpha_k + N_d / K`: the same for every topic."""
    lengths = jax.ops.segment_sum(
        entries.count,
        entries.document,
        num_segments=entries.num_documents,
        indices_are_sorted=True,
    )
    return alpha[None, :] + lengths[:, None] / alpha.shape[0]


def _word_factors(entries: _Entries, log_beta: Array) -> Array:
    r""":math:`e^{\log\beta_{kv} - \max_j \log\beta_{jv}}` per entry, (nnz, K).

    ``log_beta`` is (K, V): :math:`\mathbb{E}\log\beta` or the log of fixed topics.
    """
    shifted = log_beta - log_beta.max(0, keepdims=True)
    return jnp.exp(shifted).T[entries.word]


def _document_step(entries: _Entries, alpha: Array, gamma: Array, beta: Array):
    r"""Word-level update from ``gamma``, then the document-level update.

    ``beta`` holds :func:`_word_factors`. Returns the new :math:`\gamma` and the
    pair ``(theta, norm)`` that defines :math:`\phi` (:func:`_phi`).
    """
    e_log_theta = _expected_log(gamma)
    factor = jnp.exp(e_log_theta - e_log_theta.max(-1, keepdims=True))
    theta = factor[entries.document]
    norm = jnp.maximum(jnp.sum(theta * beta, -1), jnp.finfo(beta.dtype).tiny)
    expected_counts = jax.ops.segment_sum(
        (entries.count / norm)[:, None] * beta,
        entries.document,
        num_segments=entries.num_documents,
        indices_are_sorted=True,
    )
    return alpha[None, :] + factor * expected_counts, (theta, norm)


def _phi(beta: Array, theta_norm: tuple[Array, Array]) -> Array:
    r""":math:`\phi_{dvk}` per entry, (nnz, K)."""
    theta, norm = theta_norm
    return theta * beta / norm[:, None]


def _local_updates(
    entries: _Entries,
    alpha: Array,
    gamma: Array,
    beta: Array,
    num_iterations: int | Array,
    tol: float | Array,
):
    r"""Repeat :func:`_document_step` from ``gamma``.

    Stops after ``num_iterations`` steps, or earlier once no :math:`\gamma_{dk}`
    moved by ``tol`` or more in the last step (``tol = 0``: exactly
    ``num_iterations`` steps). Returns ``(steps, gamma, phi)``; :math:`\gamma` is
    the document-level update from :math:`\phi`.
    """

    def keep_going(carry):
        step, _, _, change = carry
        return (step < num_iterations) & (change >= tol)

    def body(carry):
        step, old, _, _ = carry
        new, theta_norm = _document_step(entries, alpha, old, beta)
        return step + 1, new, _phi(beta, theta_norm), jnp.max(jnp.abs(new - old))

    phi = jnp.zeros_like(beta)
    inf = jnp.asarray(jnp.inf, gamma.dtype)
    return jax.lax.while_loop(keep_going, body, (0, gamma, phi, inf))


def _e_step(
    entries: _Entries,
    alpha: Array,
    gamma: Array,
    beta: Array,
    num_iterations: int | Array,
    tol: float | Array,
):
    r"""Variational-EM E-step with scikit-learn's per-document stopping rule.

    Repeats :func:`_document_step` from ``gamma``; document :math:`d` stops (its
    :math:`\gamma_d` is frozen) once its mean absolute change
    :math:`\frac1K \sum_k |\Delta\gamma_{dk}|` falls below ``tol``, and all
    stop after ``num_iterations`` steps (scikit-learn's ``mean_change_tol`` and
    ``max_doc_update_iter`` in ``_update_doc_distribution``). :math:`\phi` for
    the M-step is then the word-level update from the **final** :math:`\gamma`,
    as scikit-learn forms its sufficient statistics
    (:math:`\sum_d c_{dv}\phi_{dvk}`, with :math:`\phi` from
    :math:`e^{\mathbb{E}\log\theta}` of the returned :math:`\gamma`). Returns
    ``(steps, gamma, phi)``.
    """

    def keep_going(carry):
        step, _, active = carry
        return (step < num_iterations) & jnp.any(active)

    def body(carry):
        step, old, active = carry
        new, _ = _document_step(entries, alpha, old, beta)
        new = jnp.where(active[:, None], new, old)
        change = jnp.mean(jnp.abs(new - old), -1)
        return step + 1, new, active & (change >= tol)

    active = jnp.ones(entries.num_documents, bool)
    steps, gamma, _ = jax.lax.while_loop(keep_going, body, (0, gamma, active))
    _, theta_norm = _document_step(entries, alpha, gamma, beta)
    return steps, gamma, _phi(beta, theta_norm)


def _global_update(entries: _Entries, eta: Array, phi: Array) -> Array:
    r""":math:`\lambda_{kv} = \eta_v + \sum_d c_{dv} \phi_{dvk}`."""
    expected_counts = jax.ops.segment_sum(
        entries.count[:, None] * phi, entries.word, num_segments=entries.vocab_size
    )
    return eta[None, :] + expected_counts.T


def _dirichlet_kl_terms(concentration: Array, prior: Array, e_log: Array) -> Array:
    r""":math:`\mathbb{E}_q[\log p(x) - \log q(x)]` summed over rows."""

    def log_norm(a):
        return gammaln(a.sum(-1)) - gammaln(a).sum(-1)

    prior = jnp.broadcast_to(prior, concentration.shape)
    return jnp.sum(
        log_norm(prior)
        - log_norm(concentration)
        + jnp.sum((prior - concentration) * e_log, axis=-1)
    )


def _elbo(entries: _Entries, alpha, eta, phi, gamma, lam) -> Array:
    r"""Return the closed-form ELBO at any (phi, gamma, lambda) (see lda_cavi)."""
    e_log_theta = _expected_log(gamma)
    e_log_beta = _expected_log(lam)
    expected = e_log_theta[entries.document] + e_log_beta.T[entries.word]
    tokens = jnp.sum(entries.count * jnp.sum(phi * expected - xlogy(phi, phi), axis=-1))
    return (
        tokens
        + _dirichlet_kl_terms(gamma, alpha, e_log_theta)
        + _dirichlet_kl_terms(lam, eta, e_log_beta)
        + entries.log_multinomial_coefficient
    )
