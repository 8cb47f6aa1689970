"""Tests for LDA: the two model forms, CAVI, the guides and the evaluation metrics.

Tolerances:

* exact identities run in float64 (``jax.enable_x64``) with ``EXACT_RTOL``, a few
  thousand ulps of float64, far above the rounding of sums over <= 1e4 terms;
* Monte Carlo checks assert ``|estimate - expected| <= Z * MCSE`` with ``Z = 4``
  (a two-sided normal tail of 6.3e-5 per compared statistic);
* topic recovery: after matching topics with the Hungarian algorithm, the total
  variation distance between each estimated topic (posterior mean) and the true
  one must not exceed ``ORACLE_QUANTILE`` of the same distance for draws from the
  *oracle posterior*, the exact posterior of the topics given the true
  assignments z, :math:`\\mathrm{Dirichlet}(\\eta + n_k)`. A posterior mean is
  typically closer to the truth than a posterior draw (by about 1/sqrt 2), and
  LDA's posterior, which does not know z, is wider than the oracle's; on these
  well separated corpora the estimates sit at 0.5-1.1 times the oracle's mean
  distance, while its 0.9999 quantile is about twice that mean.
* agreement with NUTS (slow tier): mean-field VI is biased, so no Monte Carlo
  bound applies. Its topic-word means should lie within ``VI_MEAN_SDS`` NUTS
  posterior sds of the NUTS means (plus ``Z`` MCSE), and its sds should be
  smaller than the NUTS sds (mean-field under-dispersion, seed Example 3.6).
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro import handlers
from numpyro.contrib.funsor import enum
from numpyro.contrib.funsor import log_density as enum_log_density
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.util import log_density
from numpyro.optim import optax_to_numpyro
from numpyro_pgm.models import (
    lda,
    lda_cavi,
    lda_guides,
    lda_metrics,
    lda_starts,
    lda_updates,
)
from scipy import stats
from scipy.special import gammaln

import numpyro_pgm as pgm
from numpyro_pgm._validation import check_guide_signature

Z = 4.0
EXACT_RTOL = 1e-12 * 4096
ORACLE_QUANTILE = 0.9999
VI_MEAN_SDS = 1.5

RECOVERY = {
    "num_documents": 200,
    "num_topics": 3,
    "vocab_size": 30,
    "doc_length": 100,
    "topic_concentration": 0.5,
    "word_concentration": 0.1,
}
HYPER = {"topic_concentration": 0.5, "word_concentration": 0.1}


def _plates(trace):
    return {
        name: [frame.name for frame in site["cond_indep_stack"]]
        for name, site in trace.items()
        if site["type"] == "sample"
    }


SMALL_ALPHA, SMALL_ETA = np.array([0.7, 1.3, 2.0]), 0.4


@pytest.fixture(scope="module")
def recovery_corpus():
    return lda.simulate(jax.random.key(0), **RECOVERY)


@pytest.fixture(scope="module")
def small_corpus():
    """Six documents of unequal length (1 to 9 tokens) over 7 words, K = 3."""
    return lda.simulate(
        jax.random.key(1),
        num_documents=6,
        num_topics=3,
        vocab_size=7,
        doc_length=np.array([4, 9, 1, 6, 3, 5]),
        topic_concentration=SMALL_ALPHA,
        word_concentration=SMALL_ETA,
    )


def _oracle_distance_quantile(corpus, quantile, num_draws=20_000, seed=0):
    """Quantile of TV(draw, truth) per topic under Dirichlet(eta + n_k)."""
    z, words = np.asarray(corpus["z"]), np.asarray(corpus["words"])
    beta = np.asarray(corpus["beta"])
    num_topics, vocab_size = beta.shape
    lengths = np.asarray(corpus["doc_lengths"])
    mask = np.arange(words.shape[0])[:, None] < lengths[None, :]
    n = np.zeros((num_topics, vocab_size))
    np.add.at(n, (z[mask], words[mask]), 1.0)
    rng = np.random.default_rng(seed)
    quantiles = []
    for k in range(num_topics):
        draws = rng.dirichlet(RECOVERY["word_concentration"] + n[k], num_draws)
        distance = 0.5 * np.abs(draws - beta[k]).sum(-1)
        quantiles.append(np.quantile(distance, quantile))
    return np.array(quantiles)


def _assert_topics_recovered(estimate, corpus):
    truth = np.asarray(corpus["beta"])
    estimate = np.asarray(estimate)[lda_metrics.match_topics(estimate, truth)]
    distance = 0.5 * np.abs(estimate - truth).sum(-1)
    bound = _oracle_distance_quantile(corpus, ORACLE_QUANTILE)
    assert np.all(distance <= bound), (distance, bound)
    return distance, bound


# ---------------------------------------------------------------------- the model


def test_simulate_agrees_with_both_model_traces(small_corpus):
    corpus = small_corpus
    assert corpus["beta"].shape == (3, 7) and corpus["theta"].shape == (6, 3)
    assert corpus["words"].shape == corpus["z"].shape == (9, 6)
    np.testing.assert_array_equal(corpus["counts"].sum(1), [4, 9, 1, 6, 3, 5])
    np.testing.assert_allclose(corpus["beta"].sum(1), 1.0, rtol=1e-5)
    counts = lda.tokens_to_counts(corpus["words"], corpus["doc_lengths"], 7)
    np.testing.assert_array_equal(counts, corpus["counts"])
    words, lengths = lda.counts_to_tokens(corpus["counts"])
    np.testing.assert_array_equal(lda.tokens_to_counts(words, lengths, 7), counts)

    values = {"beta": corpus["beta"], "theta": corpus["theta"]}
    _, trace = log_density(lda.model, (corpus["counts"],), {"num_topics": 3}, values)
    assert _plates(trace) == {
        "beta": ["topic"],
        "theta": ["document"],
        "counts": ["document"],
    }
    assert trace["counts"]["is_observed"]
    token_values = {**values, "z": corpus["z"]}
    _, trace = log_density(
        lda.token_model,
        (corpus["words"],),
        {"num_topics": 3, "vocab_size": 7, "doc_lengths": corpus["doc_lengths"]},
        token_values,
    )
    assert _plates(trace)["z"] == ["word", "document"]
    assert trace["z"]["infer"] == {"enumerate": "parallel"}
    assert set(lda.DIMS) >= set(_plates(trace))


def test_collapsed_density_is_the_token_marginal_plus_the_multinomial_coefficient(
    small_corpus,
):
    """log p(c, theta, beta) = log sum_z p(w, z, theta, beta) + log N_d!/prod c!.

    The padding of short documents must contribute nothing to the marginal.
    """
    hyper = {"topic_concentration": SMALL_ALPHA, "word_concentration": SMALL_ETA}
    beta = np.asarray(small_corpus["beta"], dtype=np.float64)
    theta = np.asarray(small_corpus["theta"], dtype=np.float64)
    beta, theta = beta / beta.sum(1, keepdims=True), theta / theta.sum(1, keepdims=True)
    counts = np.asarray(small_corpus["counts"])
    with jax.enable_x64(True):
        values = {"beta": jnp.asarray(beta), "theta": jnp.asarray(theta)}
        collapsed, _ = log_density(
            lda.model, (counts,), {"num_topics": 3, **hyper}, values
        )
        marginal, _ = enum_log_density(
            enum(lda.token_model, first_available_dim=-3),
            (np.asarray(small_corpus["words"]),),
            {
                "num_topics": 3,
                "vocab_size": 7,
                "doc_lengths": np.asarray(small_corpus["doc_lengths"]),
                **hyper,
            },
            values,
        )
        collapsed, marginal = float(collapsed), float(marginal)
    expected = sum(stats.dirichlet.logpdf(row, np.full(7, SMALL_ETA)) for row in beta)
    expected += sum(stats.dirichlet.logpdf(row, SMALL_ALPHA) for row in theta)
    expected += sum(
        stats.multinomial.logpmf(c, c.sum(), p)
        for c, p in zip(counts, theta @ beta, strict=True)
    )
    coefficient = np.sum(gammaln(counts.sum(1) + 1)) - np.sum(gammaln(counts + 1))
    np.testing.assert_allclose(collapsed, expected, rtol=EXACT_RTOL)
    np.testing.assert_allclose(marginal + coefficient, expected, rtol=EXACT_RTOL)


def test_minibatch_model_scales_the_likelihood(small_corpus):
    """With subsample_size, the counts term is scaled by D / B."""
    values = {"beta": small_corpus["beta"], "theta": small_corpus["theta"][:4]}
    model = handlers.substitute(handlers.seed(lda.model, 4), data=values)
    trace = handlers.trace(model).get_trace(
        small_corpus["counts"], num_topics=3, subsample_size=4
    )
    assert trace["theta"]["value"].shape == (4, 3)
    assert trace["counts"]["scale"] == pytest.approx(6 / 4)
    index = np.asarray(trace["document"]["value"])
    np.testing.assert_array_equal(
        trace["counts"]["value"], np.asarray(small_corpus["counts"])[index]
    )


# ------------------------------------------------------------------------- CAVI


def test_cavi_elbo_matches_a_monte_carlo_estimate(small_corpus):
    """The closed-form ELBO equals E_q[log p(c, z, theta, beta) - log q] at any
    (phi, gamma, lambda): z summed against phi exactly, theta and beta by Monte
    Carlo (at a CAVI fixed point the integrand would be constant)."""
    num_draws = 4000
    counts = np.asarray(small_corpus["counts"])
    alpha, eta = SMALL_ALPHA, np.full(7, SMALL_ETA)
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        entries = lda_cavi._entries(counts, jnp.float64)
        phi = rng.dirichlet(np.ones(3), entries.word.shape[0])
        gamma = rng.gamma(2.0, 1.0, (6, 3)) + 0.1
        lam = rng.gamma(2.0, 1.0, (3, 7)) + 0.1
        closed = float(lda_cavi._elbo(entries, alpha, eta, phi, gamma, lam))
    document, word = np.asarray(entries.document), np.asarray(entries.word)
    count = np.asarray(entries.count)
    theta = np.stack([rng.dirichlet(g, num_draws) for g in gamma], 1)
    beta = np.stack([rng.dirichlet(row, num_draws) for row in lam], 1)
    log_theta, log_beta = np.log(theta), np.log(beta)
    expected_log = log_theta[:, document, :] + np.swapaxes(log_beta[:, :, word], 1, 2)
    token = np.einsum("i,ik,sik->s", count, phi, expected_log)
    token -= np.sum(count * np.sum(phi * np.log(phi), -1))
    prior = sum(
        stats.dirichlet.logpdf(theta[:, d].T, alpha)
        - stats.dirichlet.logpdf(theta[:, d].T, gamma[d])
        for d in range(6)
    )
    prior += sum(
        stats.dirichlet.logpdf(beta[:, k].T, eta)
        - stats.dirichlet.logpdf(beta[:, k].T, lam[k])
        for k in range(3)
    )
    coefficient = np.sum(gammaln(counts.sum(1) + 1)) - np.sum(gammaln(counts + 1))
    samples = token + prior + coefficient
    mcse = samples.std(ddof=1) / math.sqrt(num_draws)
    assert mcse > 0 and abs(samples.mean() - closed) <= Z * mcse


def test_cavi_elbo_never_decreases_and_recovers_the_topics(recovery_corpus):
    with jax.enable_x64(True):
        fit = lda_cavi.cavi(
            jax.random.key(6),
            recovery_corpus["counts"],
            num_topics=RECOVERY["num_topics"],
            num_iterations=500,
            num_local_iterations=5,
            **HYPER,
        )
        elbo = np.asarray(fit.elbo)
        doc_topic, topic_word = np.asarray(fit.doc_topic), np.asarray(fit.topic_word)
    assert fit.converged and fit.num_iterations == elbo.size
    # Each sweep maximises the ELBO in every factor: the sequence is monotone up
    # to float64 rounding of a sum of ~1e4 terms.
    assert np.all(np.diff(elbo) >= -EXACT_RTOL * np.abs(elbo[1:]))
    assert doc_topic.shape == (RECOVERY["num_documents"], 3)
    _assert_topics_recovered(topic_word, recovery_corpus)


def test_document_step_is_the_seeds_softmax_update(small_corpus):
    """The exponential form of the word/document updates (no phi formed) equals
    phi = softmax(E log theta + E log beta) and gamma = alpha + sum_v c phi."""
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        entries = lda_updates._entries(small_corpus["counts"], jnp.float64)
        gamma = jnp.asarray(rng.gamma(2.0, 1.0, (6, 3)) + 0.05)
        lam = jnp.asarray(rng.gamma(0.5, 2.0, (3, 7)) + 0.05)
        e_log_beta = lda_updates._expected_log(lam)
        beta = lda_updates._word_factors(entries, e_log_beta)
        new, theta_norm = lda_updates._document_step(
            entries, jnp.asarray(SMALL_ALPHA), gamma, beta
        )
        phi = np.asarray(lda_updates._phi(beta, theta_norm))
        logits = lda_updates._expected_log(gamma)[entries.document]
        expected_phi = np.asarray(
            jax.nn.softmax(logits + e_log_beta.T[entries.word], axis=-1)
        )
        document, count = np.asarray(entries.document), np.asarray(entries.count)
    expected_gamma = SMALL_ALPHA + np.stack(
        [
            np.sum(count[document == d, None] * expected_phi[document == d], 0)
            for d in range(6)
        ]
    )
    np.testing.assert_allclose(phi, expected_phi, rtol=EXACT_RTOL)
    np.testing.assert_allclose(np.asarray(new), expected_gamma, rtol=EXACT_RTOL)


def test_digamma_matches_scipy():
    """The E-step's digamma (recurrence and asymptotic series) against scipy's
    psi, over the concentrations CAVI meets and beyond: within 1e-13 relative to
    max(1, |psi|), about 500 ulps of float64."""
    from scipy.special import psi

    x = np.geomspace(1e-4, 1e6, 20_001)
    with jax.enable_x64(True):
        ours = np.asarray(jax.jit(lda_updates._digamma)(jnp.asarray(x)))
    expected = psi(x)
    assert np.all(np.abs(ours - expected) <= 1e-13 * np.maximum(1.0, np.abs(expected)))


def _variational_em_sweep(entries, alpha, eta, lam, m_step_scale=1.0):
    """ELBOs of one variational-EM sweep: after each E-step iteration (lambda
    fixed), then after the M-step. ``m_step_scale != 1`` is a deliberately wrong
    M-step (expected counts scaled), to show the check can fail."""
    beta = lda_updates._word_factors(entries, lda_updates._expected_log(lam))
    gamma = lda_updates._initial_gamma(entries, alpha)
    e_step = []
    for _ in range(30):
        gamma, theta_norm = lda_updates._document_step(entries, alpha, gamma, beta)
        phi = lda_updates._phi(beta, theta_norm)
        e_step.append(float(lda_updates._elbo(entries, alpha, eta, phi, gamma, lam)))
    new = lda_updates._global_update(entries, eta, phi)
    new = eta + m_step_scale * (new - eta)
    return e_step, float(lda_updates._elbo(entries, alpha, eta, phi, gamma, new))


def test_variational_em_sweep_never_lowers_the_elbo_of_its_e_step(recovery_corpus):
    """What the variational-EM schedule guarantees: from the restart, every E-step
    iteration and the M-step are exact coordinate steps (the ELBO rises, up to
    float64 rounding); across sweeps it may drop (a restarted document can settle
    in a worse optimum), so no monotonicity is claimed there."""
    with jax.enable_x64(True):
        entries = lda_updates._entries(recovery_corpus["counts"], jnp.float64)
        alpha = jnp.full(3, HYPER["topic_concentration"])
        eta = jnp.full(30, HYPER["word_concentration"])
        lam = jnp.exp(0.1 * jax.random.normal(jax.random.key(4), (3, 30)))
        for _ in range(3):
            e_step, after_m = _variational_em_sweep(entries, alpha, eta, lam)
            rounding = EXACT_RTOL * np.abs(after_m)
            assert np.all(np.diff(e_step) >= -rounding)
            assert after_m >= e_step[-1] - rounding
            # A deliberately wrong M-step (expected counts halved) scores below
            # the right one, which maximises the ELBO in lambda.
            _, wrong_m = _variational_em_sweep(
                entries, alpha, eta, lam, m_step_scale=0.5
            )
            assert wrong_m < after_m - rounding
            phi_gamma = lda_updates._local_updates(
                entries,
                alpha,
                lda_updates._initial_gamma(entries, alpha),
                lda_updates._word_factors(entries, lda_updates._expected_log(lam)),
                30,
                0.0,
            )
            lam = lda_updates._global_update(entries, eta, phi_gamma[2])


def test_variational_em_sweeps_are_sklearns_batch_em_steps(
    recovery_corpus, monkeypatch
):
    """schedule='variational-em' is scikit-learn's batch VB: from the same lambda
    and the same Gamma(100, 1/100) E-step start (drawn from sklearn's own
    random_state), our sweep gives sklearn's gamma (``_e_step``: per-document
    stopping on the mean change, at most 100 updates) and its M-step lambda
    (``_em_step``: topic_word_prior + suff_stats), three sweeps in a row, to
    float64 rounding. sklearn computes digamma with its own series (absolute error
    about 1e-9), so its two Dirichlet expectations are swapped for scipy's here;
    everything else is sklearn's code."""
    sk_lda = pytest.importorskip("sklearn.decomposition._lda")
    from scipy.special import psi

    def expectation_2d(arr):
        return psi(arr) - psi(arr.sum(1, keepdims=True))

    def expectation_1d(doc_topic, prior, out):
        doc_topic += prior
        out[:] = np.exp(psi(doc_topic) - psi(doc_topic.sum()))

    monkeypatch.setattr(sk_lda, "_dirichlet_expectation_2d", expectation_2d)
    monkeypatch.setattr(
        sk_lda,
        "cy_dirichlet_expectation_1d",
        {"double": expectation_1d, "float": expectation_1d},
    )
    counts = np.asarray(recovery_corpus["counts"], np.float64)
    (num_documents, vocab_size), num_topics = counts.shape, RECOVERY["num_topics"]
    a, e = HYPER["topic_concentration"], HYPER["word_concentration"]
    sklearn_lda = sk_lda.LatentDirichletAllocation(
        n_components=num_topics, doc_topic_prior=a, topic_word_prior=e, n_jobs=1
    )
    sklearn_lda.random_state = 3
    sklearn_lda._init_latent_vars(vocab_size, dtype=np.float64)
    with jax.enable_x64(True):
        entries = lda_updates._entries(counts, jnp.float64)
        alpha, eta = jnp.full(num_topics, a), jnp.full(vocab_size, e)
        for _ in range(3):
            lam = jnp.asarray(sklearn_lda.components_)
            saved = sklearn_lda.random_state_.get_state()
            state = np.random.RandomState()
            state.set_state(saved)
            start = state.gamma(100.0, 0.01, (num_documents, num_topics))
            gamma_sklearn, _ = sklearn_lda._e_step(
                counts, cal_sstats=False, random_init=True
            )
            sklearn_lda.random_state_.set_state(saved)  # same start for _em_step
            new_lam, gamma, _ = lda_cavi._variational_em_step(
                entries, alpha, eta, lam, jnp.asarray(start), 100, 1e-3
            )
            np.testing.assert_allclose(gamma, gamma_sklearn, rtol=EXACT_RTOL)
            sklearn_lda._em_step(counts, total_samples=num_documents, batch_update=True)
            np.testing.assert_allclose(
                new_lam, sklearn_lda.components_, rtol=EXACT_RTOL
            )


SHRINK_RTOL = 1e-12  # rounding of up to 100 updates, far below EXACT_RTOL


def test_e_step_on_shrinking_working_sets_is_one_loop_over_all_documents(
    recovery_corpus,
):
    """The E-step moves the documents still active to ever smaller working sets.
    For any number of working sets, every document gets the same number of
    updates as in one loop over all documents, so the same gamma and phi: equal
    to SHRINK_RTOL, not always bit for bit (XLA may compile the same arithmetic
    differently in differently shaped programs; a few ulps here)."""
    counts = recovery_corpus["counts"]
    num_documents = RECOVERY["num_documents"]
    rng = np.random.default_rng(19)
    with jax.enable_x64(True):
        entries = lda_updates._entries(counts, jnp.float64, num_working_sets=1)
        alpha = jnp.full(3, HYPER["topic_concentration"])
        lam = jnp.asarray(rng.gamma(1.0, 1.0, (3, RECOVERY["vocab_size"])) + 0.01)
        beta = lda_updates._word_factors(entries, lda_updates._expected_log(lam))
        start = jnp.asarray(rng.gamma(100.0, 0.01, (num_documents, 3)))
        state = lda_updates._LocalState(
            0, start, jnp.ones(num_documents, bool), jnp.zeros(num_documents, int)
        )
        loop = jax.jit(lda_updates._document_loop)(
            entries, alpha, beta, state, 100, 1e-3
        )
        _, theta_norm = jax.jit(lda_updates._document_step)(
            entries, alpha, loop.gamma, beta
        )
        phi = lda_updates._phi(beta, theta_norm)
        for num_working_sets in (1, 3, 8):
            shrinking = lda_updates._entries(counts, jnp.float64, num_working_sets)
            steps, gamma, e_step_phi = jax.jit(lda_updates._e_step)(
                shrinking, alpha, start, beta, 100, 1e-3
            )
            message = f"{num_working_sets} working sets"
            np.testing.assert_array_equal(steps, loop.steps, err_msg=message)
            np.testing.assert_allclose(
                gamma, loop.gamma, rtol=SHRINK_RTOL, err_msg=message
            )
            np.testing.assert_allclose(
                e_step_phi, phi, rtol=SHRINK_RTOL, err_msg=message
            )
    # The smallest set holds 2 documents: the test does go through all of them.
    assert shrinking.working_sets[-1][1] == 2
    assert len(np.unique(loop.steps)) > 5  # documents stop at different updates


def test_variational_em_and_restarts_recover_the_topics(recovery_corpus):
    with jax.enable_x64(True):
        fit = lda_cavi.cavi(
            jax.random.key(7),
            recovery_corpus["counts"],
            num_topics=RECOVERY["num_topics"],
            num_iterations=500,
            schedule="variational-em",
            num_restarts=2,
            **HYPER,
        )
        topic_word = np.asarray(fit.topic_word)
    assert fit.converged and fit.num_iterations == fit.elbo.size
    _assert_topics_recovered(topic_word, recovery_corpus)


def test_restarts_keep_the_start_with_the_highest_elbo(small_corpus):
    """num_restarts=3 returns the best of the three single-start fits from the
    documented starts exp(0.1 eps), eps ~ N(0, 1), with keys split from rng_key."""
    counts, key = small_corpus["counts"], jax.random.key(8)
    options = {"num_topics": 3, "num_local_iterations": 2, "tol": 1e-7}
    best = lda_cavi.cavi(key, counts, num_restarts=3, **options)
    finals = [
        float(
            lda_cavi.cavi(
                key,
                counts,
                init=jnp.exp(0.1 * jax.random.normal(subkey, (3, 7))),
                **options,
            ).elbo[-1]
        )
        for subkey in jax.random.split(key, 3)
    ]
    assert float(best.elbo[-1]) == max(finals)
    assert len(set(finals)) > 1  # the starts do differ


def test_variational_em_starts_from_the_documented_gamma_draws(small_corpus):
    """schedule='variational-em' starts lambda at Gamma(100, 1/100) draws (key
    split from rng_key), like scikit-learn; the coordinate schedule's start is
    checked by the restart test above, the draws by the test below."""
    counts, key = small_corpus["counts"], jax.random.key(9)
    options = {"num_topics": 3, "schedule": "variational-em", "num_iterations": 5}
    default = lda_cavi.cavi(key, counts, **options)
    subkey = jax.random.split(key, 1)[0]
    start = lda_starts._gamma_start(subkey, (3, 7), jnp.result_type(float))
    # The E-step draws use the start's key, so both fits are the same.
    given = lda_cavi.cavi(subkey, counts, init=start, **options)
    np.testing.assert_array_equal(default.elbo, given.elbo)
    np.testing.assert_array_equal(default.beta_concentration, given.beta_concentration)


@pytest.mark.parametrize("concentration", [1.0, 100.0])
def test_gamma_draws_have_the_gamma_distribution(concentration):
    """The vectorised Marsaglia-Tsang draws pass a Kolmogorov-Smirnov test
    against Gamma(a, 1) at the two-sided normal tail of Z (6.3e-5), and the
    same test rejects them as draws of Gamma(1.1 a, 1) (the test can fail)."""
    key = jax.random.key(10)
    draws = lda_starts._gamma_draws(key, concentration, (100, 200), float)
    draws = np.asarray(draws).ravel()
    assert draws.size == 20_000 and np.all(draws > 0)
    failure_rate = 2 * stats.norm.sf(Z)
    assert stats.kstest(draws, stats.gamma(concentration).cdf).pvalue > failure_rate
    wrong = stats.gamma(1.1 * concentration).cdf
    assert stats.kstest(draws, wrong).pvalue < failure_rate


def test_fold_in_with_the_true_topics_recovers_the_proportions(recovery_corpus):
    """gamma concentrates on theta: |E theta - theta| within Z posterior sds."""
    gamma = np.asarray(
        lda_cavi.fold_in(
            recovery_corpus["counts"],
            recovery_corpus["beta"],
            topic_concentration=0.5,
            tol=1e-6,
        )
    )
    total = gamma.sum(1, keepdims=True)
    mean = gamma / total
    # The exact posterior of theta_d given beta is wider than the mean-field
    # Dirichlet; 2x its sd still bounds it (N_d = 100 tokens per document).
    sd = 2 * np.sqrt(mean * (1 - mean) / (total + 1))
    theta = np.asarray(recovery_corpus["theta"])
    assert np.mean(np.abs(mean - theta) <= Z * sd) > 0.99


# ------------------------------------------------------------------ SVI (guides)


def test_mean_field_svi_recovers_the_topics(recovery_corpus):
    """The seed's mean-field guide, trained by NumPyro's SVI on the collapsed model.

    (``pgm.fit`` with this guide runs in the case-study smoke test; here the
    optimiser alone keeps the compile time down.)
    """
    kwargs = {"num_topics": 3, **HYPER}
    svi = SVI(
        lda.model,
        lda_guides.mean_field_guide,
        optax_to_numpyro(optax.adam(0.02)),
        Trace_ELBO(),
    )
    # From the random start the topics need ~3000 steps at this rate to separate
    # fully (the loss still falls until then); 4000 leaves a margin.
    run = svi.run(
        jax.random.key(7),
        4000,
        jnp.asarray(recovery_corpus["counts"]),
        progress_bar=False,
        **kwargs,
    )
    lam = np.asarray(run.params["beta_concentration"])
    assert run.params["theta_concentration"].shape == (200, 3)
    assert np.mean(run.losses[-100:]) < np.mean(run.losses[:100])
    _assert_topics_recovered(lam / lam.sum(1, keepdims=True), recovery_corpus)


def test_amortised_guide_has_the_model_signature_and_subsamples(small_corpus):
    guide = lda_guides.make_amortised_guide(hidden_size=4)
    # Substituting the latent values skips the (slow to compile) Dirichlet sampler.
    values = {"beta": small_corpus["beta"], "theta": small_corpus["theta"][:4]}
    seeded = handlers.substitute(handlers.seed(guide, 9), data=values)
    trace = handlers.trace(seeded).get_trace(
        small_corpus["counts"], num_topics=3, subsample_size=4
    )
    assert trace["theta"]["fn"].concentration.shape == (4, 3)
    assert trace["encoder_w0"]["value"].shape == (7, 4)
    assert trace["encoder_w1"]["value"].shape == (4, 4)
    params = {n: s["value"] for n, s in trace.items() if s["type"] == "param"}
    gamma = lda_guides.amortised_concentration(
        params, small_corpus["counts"], topic_concentration=SMALL_ALPHA
    )
    # gamma_d = alpha + N_d exp(s) softmax(f): the excess over alpha sums to
    # N_d exp(s_d) > 0.
    assert gamma.shape == (6, 3) and np.all(gamma > SMALL_ALPHA)
    for guide in (lda_guides.mean_field_guide, lda_guides.amortised_guide):
        check_guide_signature(lda.model, guide)
    check_guide_signature(lda.token_model, lda_guides.token_mean_field_guide)


@pytest.mark.slow
def test_amortised_svi_on_minibatches_recovers_the_topics(recovery_corpus):
    data = {
        "counts": np.asarray(recovery_corpus["counts"]),
        "num_topics": 3,
        "subsample_size": 50,
        **HYPER,
    }
    result = pgm.fit(
        jax.random.key(10),
        lda.model,
        data=data,
        method="svi",
        guide=lda_guides.amortised_guide,
        num_steps=6000,
        learning_rate=0.01,
        num_samples=20,
        stop_on_plateau=False,
        progress_bar=False,
        checks=False,
    )
    lam = result.groups["learned_params"]["beta_concentration"][0]
    distance, bound = _assert_topics_recovered(
        lam / lam.sum(1, keepdims=True), recovery_corpus
    )
    print(f"amortised SVI: TV distances {distance.round(4)}, bounds {bound.round(4)}")


# ------------------------------------------------------------ NUTS as reference

SMALL = {"num_documents": 30, "num_topics": 2, "vocab_size": 12, "doc_length": 40}
SMALL_HYPER = {"topic_concentration": 1.0, "word_concentration": 1.0}


def _small_corpus():
    k, v = SMALL["num_topics"], SMALL["vocab_size"]
    beta = np.zeros((k, v))
    beta[0, : v // 2] = beta[1, v // 2 :] = 2.0 / v
    beta = 0.8 * beta + 0.2 / v
    return lda.simulate(jax.random.key(11), beta=beta, **SMALL, **SMALL_HYPER)


def _dirichlet_moments(concentration):
    concentration = np.asarray(concentration, dtype=np.float64)
    total = concentration.sum(-1, keepdims=True)
    mean = concentration / total
    return mean, np.sqrt(mean * (1 - mean) / (total + 1))


@pytest.mark.slow
def test_cavi_and_mean_field_svi_agree_with_collapsed_nuts():
    """Topic-word means within VI_MEAN_SDS NUTS sds; VI sds smaller than NUTS."""
    counts = np.asarray(_small_corpus()["counts"])
    data = {"counts": counts, "num_topics": 2, **SMALL_HYPER}
    nuts = pgm.fit(
        jax.random.key(12),
        lda.model,
        data=data,
        method="nuts",
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
        progress_bar=False,
        checks=False,
    )
    cavi = lda_cavi.cavi(
        jax.random.key(13),
        counts,
        num_topics=2,
        num_iterations=2000,
        num_local_iterations=5,
        tol=1e-9,
        **SMALL_HYPER,
    )
    reference = np.asarray(cavi.topic_word)
    # Chains may settle on different labellings (label switching between, not
    # within, chains): align each chain to the CAVI topics before comparing.
    beta = np.array(nuts.samples["beta"])
    for chain in range(beta.shape[0]):
        perm = lda_metrics.match_topics(beta[chain].mean(0), reference)
        beta[chain] = beta[chain][:, perm]
    assert split_gelman_rubin(beta).max() < 1.01
    nuts_mean, nuts_sd = beta.mean((0, 1)), beta.std((0, 1))
    mcse = nuts_sd / np.sqrt(effective_sample_size(beta))

    svi = pgm.fit(
        jax.random.key(14),
        lda.model,
        data=data,
        method="svi",
        guide=lda_guides.mean_field_guide,
        num_steps=4000,
        learning_rate=0.01,
        loss="meanfield_elbo",
        num_samples=10,
        stop_on_plateau=False,
        progress_bar=False,
        checks=False,
    )
    lam = svi.groups["learned_params"]["beta_concentration"][0]
    lam = lam[lda_metrics.match_topics(lam / lam.sum(1, keepdims=True), reference)]
    for name, concentration in (("cavi", cavi.beta_concentration), ("svi", lam)):
        mean, sd = _dirichlet_moments(concentration)
        gap = np.abs(mean - nuts_mean)
        ratio = sd / nuts_sd
        print(
            f"{name}: max |mean gap| / NUTS sd = {np.max(gap / nuts_sd):.3f}; "
            f"VI sd / NUTS sd median {np.median(ratio):.3f}, max {ratio.max():.3f}"
        )
        assert np.all(gap <= VI_MEAN_SDS * nuts_sd + Z * mcse), name
        assert np.median(ratio) < 1.0, name


@pytest.mark.slow
def test_token_model_svi_with_enumerated_assignments_recovers_the_topics(
    recovery_corpus,
):
    words = np.asarray(recovery_corpus["words"])
    data = {
        "words": words,
        "num_topics": 3,
        "vocab_size": RECOVERY["vocab_size"],
        "doc_lengths": np.asarray(recovery_corpus["doc_lengths"]),
        **HYPER,
    }
    result = pgm.fit(
        jax.random.key(15),
        lda.token_model,
        data=data,
        method="svi",
        guide=lda_guides.token_mean_field_guide,
        num_steps=2000,
        learning_rate=0.02,
        num_samples=10,
        progress_bar=False,
        checks=False,
    )
    assert result.settings["loss"] == "TraceEnum_ELBO"
    assert result.samples["z"].shape == (1, 10, *words.shape)
    lam = result.groups["learned_params"]["beta_concentration"][0]
    _assert_topics_recovered(lam / lam.sum(1, keepdims=True), recovery_corpus)


# ----------------------------------------------------------------------- metrics


def test_split_documents_halves_every_document():
    rng = np.random.default_rng(16)
    counts = np.stack([rng.multinomial(n, np.full(9, 1 / 9)) for n in range(2, 22)])
    observed, held = lda_metrics.split_documents(jax.random.key(17), counts)
    np.testing.assert_array_equal(observed + held, counts)
    np.testing.assert_array_equal(observed.sum(1), counts.sum(1) // 2)
    assert np.all(observed >= 0) and np.all(held >= 0)
    again, _ = lda_metrics.split_documents(jax.random.key(17), counts)
    np.testing.assert_array_equal(again, observed)


def test_perplexity_identities(recovery_corpus):
    counts = np.asarray(recovery_corpus["counts"])
    observed, held = lda_metrics.split_documents(jax.random.key(18), counts)
    vocab_size = counts.shape[1]
    # Uniform topics give every word probability 1/V whatever theta is.
    uniform = np.full((3, vocab_size), 1.0 / vocab_size)
    assert lda_metrics.completion_perplexity(uniform, observed, held) == pytest.approx(
        vocab_size, rel=1e-6
    )
    truth = lda_metrics.completion_perplexity(
        recovery_corpus["beta"], observed, held, topic_concentration=0.5
    )
    unigram = counts.sum(0) / counts.sum()
    single = lda_metrics.completion_perplexity(
        np.stack([unigram, unigram, unigram]), observed, held
    )
    assert truth < single < vocab_size


def test_npmi_and_nmi_and_matching():
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(19)
    a, b = rng.integers(0, 4, 300), rng.integers(0, 6, 300)
    b[:150] = a[:150]
    assert lda_metrics.normalized_mutual_information(a, b) == pytest.approx(
        normalized_mutual_info_score(a, b), rel=1e-10
    )
    assert lda_metrics.normalized_mutual_information(a, 7 - a) == pytest.approx(1.0)
    assert lda_metrics.normalized_mutual_information([1, 1], [2, 2]) == 1.0

    counts = rng.poisson(0.5, (50, 12))
    counts[counts.sum(1) == 0, 0] = 1
    topics = rng.dirichlet(np.ones(12), 4)
    scores = lda_metrics.npmi_coherence(topics, counts, num_words=5)
    assert scores.shape == (4,) and np.all((scores >= -1) & (scores <= 1))
    # Two words that always occur together and never apart have NPMI 1.
    together = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    topic = np.array([[0.5, 0.5, 0.0]])
    assert lda_metrics.npmi_coherence(topic, together, num_words=2)[0] == 1.0

    shuffled = topics[rng.permutation(4)]
    np.testing.assert_array_equal(
        shuffled[lda_metrics.match_topics(shuffled, topics)], topics
    )
    words = lda_metrics.top_words(topics, [f"w{j}" for j in range(12)], num_words=3)
    assert words[0][0] == f"w{int(np.argmax(topics[0]))}" and len(words[2]) == 3


# --------------------------------------------------------------------- bad input

GOOD = np.array([[1, 0, 2], [0, 3, 1]])


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        (np.array([[1, -1, 2], [0, 3, 1]]), "counts must hold non-negative integer"),
        (np.array([[1.5, 0, 2], [0, 3, 1]]), "counts must hold non-negative integer"),
        (np.array([[1, 0, 2], [0, 0, 0]]), "counts has 1 empty document"),
        (np.array([1, 0, 2]), "counts must be a 2-D array"),
    ],
)
def test_bad_counts_are_rejected_by_every_entry_point(counts, message):
    calls = [
        lambda: handlers.seed(lda.model, 0)(counts, num_topics=2),
        lambda: lda_cavi.cavi(jax.random.key(0), counts, num_topics=2),
        lambda: lda_cavi.fold_in(counts, np.full((2, 3), 1 / 3)),
        lambda: lda_metrics.split_documents(jax.random.key(0), counts),
        lambda: lda_metrics.npmi_coherence(np.full((2, 3), 1 / 3), counts),
        lambda: lda.counts_to_tokens(counts),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()


@pytest.mark.parametrize("num_topics", [1, 0, 2.0, True, "3"])
def test_fewer_than_two_topics_is_rejected(num_topics):
    for call in (
        lambda: handlers.seed(lda.model, 0)(GOOD, num_topics=num_topics),
        lambda: lda_cavi.cavi(jax.random.key(0), GOOD, num_topics=num_topics),
        lambda: lda.simulate(
            jax.random.key(0),
            num_documents=2,
            num_topics=num_topics,
            vocab_size=3,
            doc_length=4,
        ),
    ):
        with pytest.raises(ValueError, match="num_topics must be an integer of at"):
            call()


def test_vocabulary_mismatches_are_rejected():
    with pytest.raises(ValueError, match=r"vocab_size must be equal to counts"):
        handlers.seed(lda.model, 0)(GOOD, num_topics=2, vocab_size=4)
    topics = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="vocabulary has 4 words"):
        lda_metrics.top_words(topics, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="topic_word must have shape"):
        lda_cavi.fold_in(GOOD, np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="word_concentration must be positive"):
        handlers.seed(lda.model, 0)(GOOD, num_topics=2, word_concentration=np.ones(4))
    with pytest.raises(ValueError, match="topic_concentration must be positive"):
        lda_cavi.cavi(jax.random.key(0), GOOD, num_topics=2, topic_concentration=-1.0)
    with pytest.raises(ValueError, match="doc_lengths must be given"):
        handlers.seed(lda.model, 0)(num_topics=2, vocab_size=3)
    with pytest.raises(ValueError, match="words must hold vocabulary indices"):
        handlers.seed(lda.token_model, 0)(
            np.array([[0, 5]]), num_topics=2, vocab_size=3
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": "em"}, "schedule must be one of"),
        ({"num_restarts": 0}, "num_restarts must be a positive integer; got 0"),
        ({"local_tol": -1.0}, "local_tol must be a number >= 0; got -1.0"),
        (
            {"num_restarts": 2, "init": np.ones((2, 3))},
            "num_restarts=2 needs random starts",
        ),
    ],
)
def test_bad_cavi_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        lda_cavi.cavi(jax.random.key(0), GOOD, num_topics=2, **options)
