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

The variational-EM E-step (:func:`_e_step`) stops every document on its own, as
scikit-learn does, and drops the documents that have stopped from the work. All
documents are updated together until the active ones fit in half the entries and
half the documents; then they are packed into a working set of that size, and so
on (:data:`NUM_WORKING_SETS` sizes at most). This is an exact reorganisation:
every document goes through the same updates as in one loop over all documents,
which computes every document until the slowest one stops (often at the cap of
100 updates, where the median document needs about 11 on the docstring corpus).

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5 (eqs. (3.15)-(3.17)).
.. [2] M. D. Hoffman, D. M. Blei and F. Bach, "Online learning for latent
   Dirichlet allocation", NeurIPS (2010), Algorithm 1 and §2.1.
"""

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy
from jax.typing import ArrayLike
from scipy import special

from .lda_checks import check_counts

Array = jax.Array

NUM_WORKING_SETS = 4
"""Sizes of the variational-EM E-step's working set (:func:`_e_step`).

All documents, then at most 1/2, 1/4 and 1/8 of the documents and of the entries.
Measured on the docstring corpus (1,675 documents, 62,440 entries, K = 12, float64,
2 CPU cores at load 1-1.8; median fit time of seeds 0-2 in a fresh process,
including compilation / compiled): 1 size 6.1 / 5.7 s, 2 sizes 5.9 / 3.5 s,
3: 5.4 / 2.6 s, 4: 5.0 / 1.7 s, 5: 5.2 / 1.6 s, 6: 5.4 / 1.8 s; each size adds
about 0.3 s of compilation. An E-step over fixed chunks of about 2,048 entries
instead, each looped until its documents stop (documents ordered by the updates
they needed from another start, to group slow ones), took 1.3x (late sweeps) to
2x (early sweeps) as long as 4 sizes: a chunk waits for its slowest document.
"""

MIN_WORKING_SET_ENTRIES = 1024
"""Smallest working set (entries) worth its compilation (about 0.3 s a size):
below it a whole E-step costs a few milliseconds."""


class _LocalState(NamedTuple):
    r"""State of the E-step's loop over documents.

    The update ``step`` (the same for all active documents), :math:`\gamma`,
    which documents are still ``active``, and every document's number of
    updates, ``steps``.
    """

    step: Array
    gamma: Array
    active: Array
    steps: Array


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["document", "word", "count", "log_multinomial_coefficient"],
    meta_fields=["num_documents", "vocab_size", "working_sets"],
)
@dataclass(frozen=True)
class _Entries:
    """The non-zero entries of a count matrix, in COO form (sizes static).

    Entries are sorted by document (row-major order of ``np.nonzero``).
    ``working_sets`` holds the ``(num_entries, num_documents)`` of the E-step's
    smaller working sets (:func:`_working_sets`).
    """

    document: Array
    word: Array
    count: Array
    log_multinomial_coefficient: Array
    num_documents: int
    vocab_size: int
    working_sets: tuple[tuple[int, int], ...] = ()


def _working_sets(num_entries: int, num_documents: int, num_sets: int | None):
    """Sizes of the working sets after the first: 1/2, 1/4, ... of each.

    ``num_sets=None``: :data:`NUM_WORKING_SETS`, fewer if the smaller ones would
    hold fewer than :data:`MIN_WORKING_SET_ENTRIES` entries.
    """
    if num_sets is None:
        largest = (num_entries // MIN_WORKING_SET_ENTRIES).bit_length()
        num_sets = max(1, min(NUM_WORKING_SETS, largest))
    return tuple(
        (-(-num_entries // 2**level), -(-num_documents // 2**level))
        for level in range(1, num_sets)
    )


def _entries(counts: ArrayLike, dtype, num_working_sets: int | None = None) -> _Entries:
    values = np.asarray(check_counts(counts)).astype(np.int64)
    document, word = np.nonzero(values)
    count = values[document, word]
    lengths = values.sum(1)
    coefficient = np.sum(special.gammaln(lengths + 1.0))
    coefficient -= np.sum(special.gammaln(count + 1.0))
    return _Entries(
        jnp.asarray(document),
        jnp.asarray(word),
        jnp.asarray(count, dtype),
        jnp.asarray(coefficient, dtype),
        int(values.shape[0]),
        int(values.shape[1]),
        _working_sets(document.size, values.shape[0], num_working_sets),
    )


_DIGAMMA_SHIFT = 6
# B_2n / (2n) for n = 1, ..., 7 (B_2n the Bernoulli numbers).
_DIGAMMA_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


def _digamma(x: Array) -> Array:
    r"""Digamma function :math:`\psi(x)` for :math:`x > 0`.

    Shifted up by the recurrence, then the asymptotic (Stirling) series [1]_:

    .. math::

        \psi(x) = \psi(x + 6) - \sum_{i=0}^{5} \frac{1}{x + i}, \qquad
        \psi(y) = \log y - \frac{1}{2y} - \sum_{n=1}^{7}
            \frac{B_{2n}}{2n\, y^{2n}} + R,

    :math:`B_{2n}` the Bernoulli numbers; for :math:`y \ge 6` the remainder
    :math:`|R|` is below the first omitted term, :math:`2 \cdot 10^{-13}`. On
    :math:`[10^{-4}, 10^6]` the result is within :math:`10^{-13} \max(1,
    |\psi(x)|)` of scipy's ``psi`` (tested). On a CPU it runs about 3x faster
    than XLA's digamma, and its program is smaller to compile.

    References
    ----------
    .. [1] M. Abramowitz and I. A. Stegun, *Handbook of Mathematical Functions*
       (1964), 6.3.5 and 6.3.18.
    """
    shift = sum(1.0 / (x + i) for i in range(_DIGAMMA_SHIFT))
    y = x + _DIGAMMA_SHIFT
    inverse_square = 1.0 / (y * y)
    series = 0.0
    for coefficient in reversed(_DIGAMMA_SERIES):
        series = inverse_square * (coefficient + series)
    return jnp.log(y) - 0.5 / y - series - shift


def _expected_log(concentration: Array) -> Array:
    r""":math:`\mathbb{E}[\log x]` under :math:`\mathrm{Dirichlet}` per row."""
    return _digamma(concentration) - _digamma(concentration.sum(-1, keepdims=True))


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


def _lengths(entries: _Entries) -> Array:
    """Count the entries of every document."""
    return jax.ops.segment_sum(
        jnp.ones_like(entries.document),
        entries.document,
        num_segments=entries.num_documents,
        indices_are_sorted=True,
    )


def _document_loop(
    entries: _Entries,
    alpha: Array,
    beta: Array,
    state: _LocalState,
    num_iterations: int | Array,
    tol: float | Array,
    smaller: tuple[int, int] | None = None,
) -> _LocalState:
    r"""Repeat :func:`_document_step`, stopping every document on its own.

    An active document is updated until its mean absolute change
    :math:`\frac1K \sum_k |\Delta\gamma_{dk}|` falls below ``tol``; then its
    :math:`\gamma_d` is frozen (scikit-learn's ``mean_change_tol`` in
    ``_update_doc_distribution``). The loop ends when no document is active, at
    update ``num_iterations`` (``max_doc_update_iter``), or, given ``smaller =
    (num_entries, num_documents)``, as soon as the active documents fit in a
    working set of that size.
    """
    lengths = _lengths(entries)

    def keep_going(state):
        going = (state.step < num_iterations) & jnp.any(state.active)
        if smaller is None:
            return going
        return going & ~_fits(state.active, lengths, smaller)

    def body(state):
        step, old, active, steps = state
        new, _ = _document_step(entries, alpha, old, beta)
        new = jnp.where(active[:, None], new, old)
        change = jnp.mean(jnp.abs(new - old), -1)
        return _LocalState(step + 1, new, active & (change >= tol), steps + active)

    return jax.lax.while_loop(keep_going, body, state)


def _fits(active: Array, lengths: Array, size: tuple[int, int]) -> Array:
    """Whether the active documents fit in ``size = (num_entries, num_documents)``."""
    num_entries, num_documents = size
    return (jnp.sum(active) <= num_documents) & (
        jnp.sum(jnp.where(active, lengths, 0)) <= num_entries
    )


def _working_set(
    entries: _Entries, active: Array, size: tuple[int, int]
) -> tuple[_Entries, Array, Array]:
    r"""Pack the active documents into a working set of ``size``.

    ``size = (num_entries, num_documents)`` must hold them (:func:`_fits`). The
    working set is a count matrix of its own: document :math:`s` is the
    :math:`s`-th active one, entries keep their order, and padding entries
    (count 0) sit in an extra, empty last document. Returns its entries, the
    document in each of its slots (``num_documents`` of ``entries`` for the
    empty ones) and the index of each of its entries in ``entries`` (``nnz`` for
    padding).
    """
    num_entries, num_slots = size
    num_all, document = entries.document.shape[0], entries.document
    lengths = _lengths(entries)
    # Each active document's slot, and where its entries start in the set.
    active_lengths = jnp.where(active, lengths, 0)
    rank, end = jnp.cumsum(jnp.stack([active, active_lengths]), axis=1)
    slot = jnp.where(active, rank - 1, num_slots + 1)  # out of range: dropped
    start = end - active_lengths
    # Each entry's place: its document's start plus its rank in the document.
    within = jnp.arange(num_all) - (jnp.cumsum(lengths) - lengths)[document]
    place = jnp.where(active[document], start[document] + within, num_entries)
    entry = (
        jnp.full(num_entries, num_all).at[place].set(jnp.arange(num_all), mode="drop")
    )
    working = _Entries(
        jnp.full(num_entries, num_slots).at[place].set(slot[document], mode="drop"),
        entries.word.at[entry].get(mode="fill", fill_value=0),
        entries.count.at[entry].get(mode="fill", fill_value=0),
        entries.log_multinomial_coefficient,
        num_slots + 1,
        entries.vocab_size,
    )
    documents = jnp.full(num_slots + 1, entries.num_documents)
    documents = documents.at[slot].set(jnp.arange(entries.num_documents), mode="drop")
    return working, documents, entry


def _shrunk_loop(entries, alpha, beta, state, size, smaller, num_iterations, tol):
    """:func:`_document_loop` on the active documents, in a working set of ``size``."""
    working, documents, entry = _working_set(entries, state.active, size)
    local = _LocalState(
        state.step,
        state.gamma.at[documents].get(mode="fill", fill_value=1),
        state.active.at[documents].get(mode="fill", fill_value=False),
        state.steps.at[documents].get(mode="fill", fill_value=0),
    )
    working_beta = beta.at[entry].get(mode="fill", fill_value=0)
    local = _document_loop(
        working, alpha, working_beta, local, num_iterations, tol, smaller
    )
    return _LocalState(
        local.step,
        state.gamma.at[documents].set(local.gamma, mode="drop"),
        state.active.at[documents].set(local.active, mode="drop"),
        state.steps.at[documents].set(local.steps, mode="drop"),
    )


def _e_step(
    entries: _Entries,
    alpha: Array,
    gamma: Array,
    beta: Array,
    num_iterations: int | Array,
    tol: float | Array,
):
    r"""Variational-EM E-step with scikit-learn's per-document stopping rule.

    The seed's word- and document-level updates (§3.5, eq. (3.17) and the one
    after it, in the form of the module docstring) repeated per document,

    .. math::

        \gamma_d^{(t+1)} = \alpha + e^{\mathbb{E}\log\theta_d^{(t)}} \odot
            \sum_v \frac{c_{dv}\, e^{\mathbb{E}\log\beta_{\cdot v}}}
            {\sum_j e^{\mathbb{E}\log\theta_{dj}^{(t)}}
            e^{\mathbb{E}\log\beta_{jv}}}
        \quad \text{while} \quad \frac1K \sum_k
            |\gamma_{dk}^{(t)} - \gamma_{dk}^{(t-1)}| \ge \mathrm{tol},

    at most ``num_iterations`` times: :func:`_document_loop` from ``gamma``,
    with every document active, on a shrinking working set. Once the active
    documents fit in half as many entries and documents (``entries.working_sets``)
    they are packed into that smaller set (padding entries have count 0 and add
    exactly 0 to their document's sums) and the loop goes on there. All active
    documents are updated together, so each one goes through the same updates
    as in one loop over all documents; documents that have stopped are dropped
    from the work.
    :math:`\phi` for the M-step is then the word-level update from the **final**
    :math:`\gamma`, as scikit-learn forms its sufficient statistics
    (:math:`\sum_d c_{dv}\phi_{dvk}`, with :math:`\phi` from
    :math:`e^{\mathbb{E}\log\theta}` of the returned :math:`\gamma`). Returns
    ``(steps, gamma, phi)``, ``steps`` the number of updates of every document.
    """
    num_documents, sizes = entries.num_documents, entries.working_sets
    state = _LocalState(
        jnp.zeros((), int),
        gamma,
        jnp.ones(num_documents, bool),
        jnp.zeros(num_documents, int),
    )
    smaller = (*sizes, None)
    state = _document_loop(entries, alpha, beta, state, num_iterations, tol, smaller[0])
    for size, next_size in zip(sizes, smaller[1:], strict=True):
        state = _shrunk_loop(
            entries, alpha, beta, state, size, next_size, num_iterations, tol
        )
    _, theta_norm = _document_step(entries, alpha, state.gamma, beta)
    return state.steps, state.gamma, _phi(beta, theta_norm)


def _global_update(entries: _Entries, eta: Array, phi: Array) -> Array:
    r""":math:`\lambda_{kv} = \eta_v + \sum_d c_{dv} \phi_{dvk}`."""
    expected_counts = jax.ops.segment_sum(
        entries.count[:, None] * phi, entries.word, num_segments=entries.vocab_size
    )
    return eta[None, :] + expected_counts.T


def _log_beta(concentration: Array) -> Array:
    r"""Sum :math:`\log B(a) = \sum_i \log\Gamma(a_i) - \log\Gamma(a_0)` over rows.

    :math:`B` is the multivariate beta function, :math:`a_0 = \sum_i a_i`.
    """
    return jnp.sum(gammaln(concentration)) - jnp.sum(gammaln(concentration.sum(-1)))


def _elbo(entries: _Entries, alpha, eta, phi, gamma, lam) -> Array:
    r"""Return the closed-form ELBO at any (phi, gamma, lambda) (see lda_cavi).

    With the expected counts :math:`n_{dk} = \sum_v c_{dv}\phi_{dvk}` and
    :math:`m_{kv} = \sum_d c_{dv}\phi_{dvk}`, the seed's bound (lda_cavi's
    module docstring) reads

    .. math::

        \mathcal{L} = \sum_{d,k} (\alpha_k + n_{dk} - \gamma_{dk})
            \mathbb{E}\log\theta_{dk} + \sum_d \log\frac{B(\gamma_d)}{B(\alpha)}
        + \sum_{k,v} (\eta_v + m_{kv} - \lambda_{kv}) \mathbb{E}\log\beta_{kv}
            + \sum_k \log\frac{B(\lambda_k)}{B(\eta)}
        - \sum_{d,v,k} c_{dv}\phi_{dvk}\log\phi_{dvk}
        + \sum_d \log\frac{N_d!}{\prod_v c_{dv}!},

    :math:`B` the multivariate beta function: each expectation and log-gamma is
    evaluated once per factor (a smaller program to compile than one term per
    entry, and the same sum).
    """
    weighted = entries.count[:, None] * phi
    n = jax.ops.segment_sum(
        weighted,
        entries.document,
        num_segments=entries.num_documents,
        indices_are_sorted=True,
    )
    m = jax.ops.segment_sum(weighted, entries.word, num_segments=entries.vocab_size)
    num_documents, num_topics = gamma.shape
    return (
        jnp.sum((alpha[None, :] + n - gamma) * _expected_log(gamma))
        + _log_beta(gamma)
        - num_documents * _log_beta(alpha)
        + jnp.sum((eta[None, :] + m.T - lam) * _expected_log(lam))
        + _log_beta(lam)
        - num_topics * _log_beta(eta)
        - jnp.sum(entries.count * jnp.sum(xlogy(phi, phi), axis=-1))
        + entries.log_multinomial_coefficient
    )
