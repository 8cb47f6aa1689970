r"""Coordinate ascent variational inference for LDA (seed §3.5).

The mean-field family is the seed's (``003_02afaf35b30b64a9.txt``, §3.5),

.. math::

    q(\beta, \theta, z) = \prod_k \mathrm{Dirichlet}(\beta_k; \lambda_k)
    \prod_d \mathrm{Dirichlet}(\theta_d; \gamma_d) \prod_{d,n}
    \mathrm{Categorical}(z_{dn}; \phi_{dn}),

and each factor is set to :math:`\exp \mathbb{E}_{q_{-j}} \log p` in turn (eq.
(3.13)). With :math:`\mathbb{E}[\log \theta_{dk}] = \psi(\gamma_{dk}) -
\psi(\sum_j \gamma_{dj})` and :math:`\mathbb{E}[\log \beta_{kv}] = \psi(\lambda_{kv})
- \psi(\sum_u \lambda_{ku})`, the updates are eq. (3.17) and the two that follow it:

.. math::

    \phi_{dnk} &\propto \exp\bigl(\mathbb{E}[\log \theta_{dk}]
        + \mathbb{E}[\log \beta_{k, w_{dn}}]\bigr), \\
    \gamma_{dk} &= \alpha_k + \textstyle\sum_n \phi_{dnk}, \\
    \lambda_{kv} &= \eta_v + \textstyle\sum_{d,n} \phi_{dnk}
        \mathbf{1}\{w_{dn} = v\}.

Tokens of the same word in the same document share :math:`\phi`, so the updates
run over the non-zero entries :math:`c_{dv} > 0` of the count matrix only, with
the sums weighted by :math:`c_{dv}`: the cost per sweep is
:math:`O(\mathrm{nnz}(c) K)`, not :math:`O(\text{tokens} \cdot K)` or
:math:`O(D V K)`. The ELBO is computed in closed form after every sweep,

.. math::

    \mathcal{L} = \sum_{d,v} c_{dv} \sum_k \phi_{dvk}
        \bigl(\mathbb{E}\log\theta_{dk} + \mathbb{E}\log\beta_{kv}
        - \log\phi_{dvk}\bigr)
    - \sum_d \mathrm{KL}(q(\theta_d) \| p(\theta_d))
    - \sum_k \mathrm{KL}(q(\beta_k) \| p(\beta_k))
    + \sum_d \log \frac{N_d!}{\prod_v c_{dv}!},

a lower bound on :math:`\log p(c)` under :func:`numpyro_pgm.models.lda.model`
(the last term, a constant, turns the seed's bound on the token sequence into
one on the counts). Each update maximises :math:`\mathcal{L}` in its factor, so
under the default ``schedule="coordinate"`` the recorded ELBO never decreases;
``schedule="variational-em"`` restarts :math:`\gamma` every sweep (variational
EM [2]_, scikit-learn's batch schedule [3]_) and gives that up. The updates
themselves are in :mod:`numpyro_pgm.models.lda_updates`.

:func:`fold_in` runs the word- and document-level updates alone with the topics
held fixed: the estimate of a new document's :math:`q(\theta_d)` used by
document-completion perplexity.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5 (eqs. (3.15)-(3.17)) and eq. (3.13).
.. [2] D. M. Blei, A. Y. Ng and M. I. Jordan, "Latent Dirichlet allocation",
   JMLR 3 (2003), appendix A.
.. [3] M. D. Hoffman, D. M. Blei and F. Bach, "Online learning for latent
   Dirichlet allocation", NeurIPS (2010).
"""

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .lda_checks import _concentrations, check_num_topics
from .lda_starts import _gamma_start, _initial_lambda
from .lda_updates import (
    _e_step,
    _elbo,
    _entries,
    _expected_log,
    _global_update,
    _initial_gamma,
    _local_updates,
    _word_factors,
)

__all__ = ["CAVIResult", "cavi", "fold_in"]

Array = jax.Array


class CAVIResult(NamedTuple):
    r"""Output of :func:`cavi`: the mean-field posterior and its ELBO.

    Attributes
    ----------
    beta_concentration : Array of shape (num_topics, vocab_size)
        :math:`\lambda`: :math:`q(\beta_k) = \mathrm{Dirichlet}(\lambda_k)`.
    theta_concentration : Array of shape (num_documents, num_topics)
        :math:`\gamma`: :math:`q(\theta_d) = \mathrm{Dirichlet}(\gamma_d)`.
    elbo : Array of shape (num_iterations,)
        The ELBO after every sweep (closed form); non-decreasing under
        ``schedule="coordinate"``.
    converged : bool
        Whether the change of the ELBO per token fell below ``tol``.
    num_iterations : int
        Number of sweeps run.
    """

    beta_concentration: Array
    theta_concentration: Array
    elbo: Array
    converged: bool
    num_iterations: int

    @property
    def topic_word(self) -> Array:
        r"""Posterior mean :math:`\mathbb{E}_q[\beta_k] = \lambda_k / \sum_v
        \lambda_{kv}`, shape (num_topics, vocab_size)."""  # noqa: D205, D209, D400
        lam = self.beta_concentration
        return lam / lam.sum(-1, keepdims=True)

    @property
    def doc_topic(self) -> Array:
        r"""Posterior mean :math:`\mathbb{E}_q[\theta_d]`, shape (num_documents,
        num_topics)."""  # noqa: D205, D209, D400
        gamma = self.theta_concentration
        return gamma / gamma.sum(-1, keepdims=True)


SCHEDULES = ("coordinate", "variational-em")


def cavi(
    rng_key: Array,
    counts: ArrayLike,
    *,
    num_topics: int,
    topic_concentration: ArrayLike | None = None,
    word_concentration: ArrayLike | None = None,
    num_iterations: int = 200,
    num_local_iterations: int | None = None,
    tol: float = 1e-6,
    init: ArrayLike | None = None,
    schedule: str = "coordinate",
    local_tol: float | None = None,
    num_restarts: int = 1,
) -> CAVIResult:
    r"""Mean-field VI for LDA with the seed's updates (§3.5).

    One sweep applies the word-level update :math:`\phi` (eq. (3.17)) and the
    document-level update :math:`\gamma` (repeatedly, see ``schedule``), then the
    global update :math:`\lambda`; the ELBO is recorded after each sweep.

    .. math::

        \phi_{dvk} \propto \exp(\mathbb{E}\log\theta_{dk} + \mathbb{E}\log
        \beta_{kv}), \quad
        \gamma_{dk} = \alpha_k + \sum_v c_{dv}\phi_{dvk}, \quad
        \lambda_{kv} = \eta_v + \sum_d c_{dv}\phi_{dvk}.

    Two schedules of the same updates:

    * ``"coordinate"`` (default): the seed's coordinate ascent. :math:`\gamma` is
      kept from one sweep to the next and every update maximises the ELBO in its
      factor, so **the ELBO never decreases**.
    * ``"variational-em"``: the variational EM of Blei, Ng and Jordan (2003, §5.3)
      as run by scikit-learn's batch ``LatentDirichletAllocation`` (Hoffman,
      Blei and Bach 2010), reproduced step for step (tested against its
      ``_e_step`` and ``_em_step`` from the same start). Each sweep is an E-step
      that **restarts** every :math:`\gamma_{dk}` at a fresh draw from
      :math:`\mathrm{Gamma}(100, 1/100)` (mean 1, sd 0.1) and iterates the word-
      and document-level updates, each document until its mean absolute change
      :math:`\frac1K\sum_k|\Delta\gamma_{dk}|` is below ``local_tol`` (then its
      :math:`\gamma_d` is frozen), at most ``num_local_iterations`` times; then
      an M-step (the global update) with :math:`\phi` from the final
      :math:`\gamma`. The restart lets a document leave a poor local optimum of
      its own problem (with :math:`\alpha_k < 1` the prior favours corners of
      the simplex, so there can be several); the two schedules are compared on
      the docstring corpus in ``benchmarks/results/lda.md``. It is **not**
      coordinate ascent: the ELBO can drop from one sweep to the next when a
      restarted document settles in a worse optimum. What it guarantees: within
      a sweep, each E-step iteration and the M-step do not decrease the ELBO
      (from the restart), i.e. the recorded ELBO is at least that of the E-step
      it follows.

    Which to use: ``"variational-em"`` under ``jax.enable_x64`` is
    scikit-learn's batch fit and reaches its held-out perplexity, in less time
    than scikit-learn takes, compilation included; ``"coordinate"`` is the
    fastest per fit and the one with a monotone ELBO (a check that the updates
    are right), at a few percent worse perplexity; ``"variational-em"`` in
    float32 lands between the two (the numbers on the docstring corpus are in
    ``benchmarks/results/lda.md``).

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key for the initial :math:`\lambda` (ignored with ``init``).
    counts : array_like of shape (num_documents, vocab_size)
        Non-negative integer word counts, no empty document.
    num_topics : int
        Number of topics :math:`K \ge 2`.
    topic_concentration, word_concentration : float or array_like, optional
        :math:`\alpha` (num_topics,) and :math:`\eta` (vocab_size,), as in
        :func:`numpyro_pgm.models.lda.model` (default :math:`1/K`).
    num_iterations : int
        Maximum number of sweeps.
    num_local_iterations : int, optional
        Most word/document updates per sweep before the global update. Default
        1 for ``"coordinate"`` (the seed's sweep) and 100 for ``"variational-em"``
        (scikit-learn's ``max_doc_update_iter``).
    tol : float
        Stop when the ELBO per token changes by less than ``tol``.
    init : array_like of shape (num_topics, vocab_size), optional
        Initial :math:`\lambda`. Default for ``"variational-em"``:
        :math:`\lambda_{kv} \sim \mathrm{Gamma}(100, 1/100)`, scikit-learn's
        start [2]_; for ``"coordinate"``: :math:`\exp(0.1\,\epsilon_{kv})`
        with :math:`\epsilon_{kv} \sim \mathcal{N}(0, 1)` (mean about 1 and
        spread 0.1, like the gamma start, without compiling a gamma sampler).
        Under ``"coordinate"``, :math:`\gamma` starts at :math:`\alpha +
        N_d/K`.
    schedule : {"coordinate", "variational-em"}
        How the local updates are scheduled (above).
    local_tol : float, optional
        ``"coordinate"``: end a sweep's local updates early once no
        :math:`\gamma_{dk}` moved by ``local_tol`` or more (default 0: exactly
        ``num_local_iterations``). ``"variational-em"``: a document stops once
        the mean over topics of its :math:`|\Delta\gamma_{dk}|` is below
        ``local_tol`` (default 1e-3, scikit-learn's ``mean_change_tol``).
    num_restarts : int
        Number of fits from independent random starts (keys split from
        ``rng_key``; compiled once); the one with the highest final ELBO is
        returned. The ELBO has many local optima (topics are not identified, and
        documents can lock into poor assignments early); on the docstring corpus
        the final ELBO and held-out perplexity of a start go together, so the
        best of a few starts is a cheap remedy. Needs ``init=None``.

    Returns
    -------
    CAVIResult
        :math:`\lambda`, :math:`\gamma`, the ELBO per sweep and convergence
        information; ``.topic_word`` and ``.doc_topic`` are posterior means.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import lda, lda_cavi
    >>> corpus = lda.simulate(jax.random.key(0), num_documents=30, num_topics=2,
    ...                       vocab_size=12, doc_length=40)
    >>> fit = lda_cavi.cavi(jax.random.key(1), corpus["counts"], num_topics=2)
    >>> fit.topic_word.shape, bool(jax.numpy.all(jax.numpy.diff(fit.elbo) >= -1e-3))
    ((2, 12), True)

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §3.5.
    .. [2] M. D. Hoffman, D. M. Blei and F. Bach, "Online learning for latent
       Dirichlet allocation", NeurIPS (2010).
    .. [3] D. M. Blei, A. Y. Ng and M. I. Jordan, "Latent Dirichlet allocation",
       JMLR 3 (2003), §5.3 and appendix A.
    """
    num_topics = check_num_topics(num_topics)
    if schedule not in SCHEDULES:
        raise ValueError(
            f"schedule must be one of {SCHEDULES}; got {schedule!r}. Use "
            "'coordinate' for monotone coordinate ascent or 'variational-em' for "
            "scikit-learn's batch schedule."
        )
    restart = schedule == "variational-em"
    if num_local_iterations is None:
        num_local_iterations = 100 if restart else 1
    if local_tol is None:
        local_tol = 1e-3 if restart else 0.0
    _check_iterations("num_iterations", num_iterations)
    _check_iterations("num_local_iterations", num_local_iterations)
    _check_iterations("num_restarts", num_restarts)
    _check_tol(tol)
    _check_tol(local_tol, "local_tol")
    dtype = jnp.result_type(float)
    entries = _entries(counts, dtype)
    alpha, eta = _concentrations(
        num_topics, entries.vocab_size, topic_concentration, word_concentration
    )
    if init is not None:
        init = jnp.asarray(init, dtype)
        values = np.asarray(init)
        if init.shape != (num_topics, entries.vocab_size) or not np.all(values > 0):
            raise ValueError(
                f"init must be positive with shape (num_topics, vocab_size) = "
                f"{(num_topics, entries.vocab_size)}; got shape {init.shape}. Pass "
                "an initial beta_concentration, or None for a random one."
            )
        if num_restarts != 1:
            raise ValueError(
                f"num_restarts={num_restarts} needs random starts, but init was "
                "given; pass init=None or num_restarts=1."
            )
    total_tokens = float(np.asarray(entries.count).sum())
    best, best_elbo = None, -np.inf
    for start in range(num_restarts):
        iterations, (lam, gamma), history = _run_cavi(
            entries,
            alpha,
            eta,
            init,
            rng_key,
            start,
            num_restarts=num_restarts,
            num_iterations=num_iterations,
            restart=restart,
            num_local=num_local_iterations,
            tol=tol,
            local_tol=local_tol,
        )
        iterations = int(iterations)
        elbo = np.asarray(history)[1 : iterations + 1]
        converged = iterations > 1 and bool(
            abs(elbo[-1] - elbo[-2]) < tol * total_tokens
        )
        if best is None or elbo[-1] > best_elbo:
            best = CAVIResult(lam, gamma, jnp.asarray(elbo), converged, iterations)
            best_elbo = elbo[-1]
    return best


def _check_iterations(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def _check_tol(tol: Any, name: str = "tol") -> None:
    if isinstance(tol, bool) or not (isinstance(tol, int | float) and tol >= 0):
        raise ValueError(f"{name} must be a number >= 0; got {tol!r}. Pass e.g. 1e-6.")


def _sweep(entries, alpha, eta, lam, gamma, restart, num_local, local_tol, key):
    """One sweep: local updates (from a restart or the current gamma), global."""
    if restart:
        start = _gamma_start(key, gamma.shape, gamma.dtype)
        return _variational_em_step(
            entries, alpha, eta, lam, start, num_local, local_tol
        )
    beta = _word_factors(entries, _expected_log(lam))
    _, gamma, phi, _ = _local_updates(entries, alpha, gamma, beta, num_local, local_tol)
    lam = _global_update(entries, eta, phi)
    return lam, gamma, _elbo(entries, alpha, eta, phi, gamma, lam)


@jax.jit
def _variational_em_step(entries, alpha, eta, lam, gamma, num_local, local_tol):
    r"""scikit-learn's batch ``_em_step`` from the E-step start ``gamma``.

    E-step: :func:`~numpyro_pgm.models.lda_updates._e_step` (per-document
    stopping, phi from the final gamma); M-step: :math:`\lambda = \eta +
    \sum_d c_{dv}\phi_{dvk}`. Returns ``(lam, gamma, elbo)``.
    """
    beta = _word_factors(entries, _expected_log(lam))
    _, gamma, phi = _e_step(entries, alpha, gamma, beta, num_local, local_tol)
    lam = _global_update(entries, eta, phi)
    return lam, gamma, _elbo(entries, alpha, eta, phi, gamma, lam)


@partial(
    jax.jit,
    static_argnames=("num_restarts", "num_iterations", "restart"),
)
def _run_cavi(
    entries,
    alpha,
    eta,
    init,
    rng_key,
    start,
    *,
    num_restarts,
    num_iterations,
    restart,
    num_local,
    tol,
    local_tol,
):
    """Fit from start ``start`` of ``num_restarts`` (``init``: the given lambda).

    The key of a random start is ``split(rng_key, num_restarts)[start]``; the
    E-step draws come from ``fold_in(key, 1)`` (``key = rng_key`` with ``init``).
    Compiled once for all starts.
    """
    if init is None:
        rng_key = jax.random.split(rng_key, num_restarts)[start]
        shape = (alpha.shape[0], entries.vocab_size)
        init = _initial_lambda(rng_key, shape, alpha.dtype, restart)
    key = jax.random.fold_in(rng_key, 1)
    gamma = _initial_gamma(entries, alpha)
    total_tokens = entries.count.sum()
    history = jnp.full(num_iterations + 1, jnp.nan, dtype=init.dtype)
    history = history.at[0].set(-jnp.inf)

    def keep_going(carry):
        iteration, _, history = carry
        change = jnp.abs(history[iteration] - history[jnp.maximum(iteration - 1, 0)])
        converged = (iteration > 1) & (change < tol * total_tokens)
        finite = (iteration == 0) | jnp.isfinite(history[iteration])
        return (iteration < num_iterations) & ~converged & finite

    def body(carry):
        iteration, (lam, gamma), history = carry
        lam, gamma, objective = _sweep(
            entries,
            alpha,
            eta,
            lam,
            gamma,
            restart,
            num_local,
            local_tol,
            jax.random.fold_in(key, iteration),
        )
        return iteration + 1, (lam, gamma), history.at[iteration + 1].set(objective)

    return jax.lax.while_loop(keep_going, body, (0, (init, gamma), history))


def fold_in(
    counts: ArrayLike,
    topic_word: ArrayLike,
    *,
    topic_concentration: ArrayLike | None = None,
    num_iterations: int = 200,
    tol: float = 1e-4,
) -> Array:
    r"""Estimate :math:`q(\theta_d)` of documents with the topics held fixed.

    Iterates the seed's word- and document-level updates with :math:`\beta`
    fixed at the point estimate ``topic_word``:

    .. math::

        \phi_{dvk} \propto \exp(\mathbb{E}\log\theta_{dk})\, \beta_{kv}, \qquad
        \gamma_{dk} = \alpha_k + \textstyle\sum_v c_{dv} \phi_{dvk},

    until no :math:`\gamma_{dk}` moves by more than ``tol`` (or
    ``num_iterations`` sweeps).

    Parameters
    ----------
    counts : array_like of shape (num_documents, vocab_size)
        Word counts of the documents to fold in.
    topic_word : array_like of shape (num_topics, vocab_size)
        Topics :math:`\beta` (rows on the simplex), e.g. a posterior mean.
    topic_concentration : float or array_like, optional
        :math:`\alpha` (default :math:`1/K`).
    num_iterations : int
        Maximum number of sweeps.
    tol : float
        Stop when :math:`\max_{dk} |\Delta\gamma_{dk}| <` ``tol``.

    Returns
    -------
    Array of shape (num_documents, num_topics)
        :math:`\gamma_d`; :math:`\mathbb{E}[\theta_d] = \gamma_d / \sum_k
        \gamma_{dk}`.
    """
    _check_iterations("num_iterations", num_iterations)
    _check_tol(tol)
    dtype = jnp.result_type(float)
    entries = _entries(counts, dtype)
    topic_word = jnp.asarray(topic_word, dtype)
    if topic_word.ndim != 2 or topic_word.shape[1] != entries.vocab_size:
        raise ValueError(
            f"topic_word must have shape (num_topics, vocab_size={entries.vocab_size})"
            f" to match counts; got shape {topic_word.shape}. Use the same vocabulary "
            "(columns) for both."
        )
    num_topics = check_num_topics(topic_word.shape[0])
    alpha, _ = _concentrations(
        num_topics, entries.vocab_size, topic_concentration, None
    )
    log_beta = jnp.log(jnp.clip(topic_word, jnp.finfo(dtype).tiny))
    return _run_fold_in(entries, alpha, log_beta, num_iterations, tol)


@jax.jit
def _run_fold_in(entries, alpha, log_beta, num_iterations, tol):
    beta = _word_factors(entries, log_beta)
    gamma = _initial_gamma(entries, alpha)
    return _local_updates(entries, alpha, gamma, beta, num_iterations, tol)[1]
