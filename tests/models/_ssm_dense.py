"""Shared helpers of the state-space tests: dense Gaussian algebra as the reference.

Loaded by path from test_kalman.py, test_structural.py and test_state_space.py (the
tests directory is not a package). The whole joint of (z_{1:T}, y_{1:T}) is built
block by block and conditioned with the seed-000 section-5 formula, independently of
the Kalman recursions it checks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from numpyro_pgm.models import state_space as ss

# Each Monte Carlo check is a family of K standardized comparisons; with a declared
# family failure rate ALPHA, Bonferroni gives the per-comparison z.
ALPHA = 1e-4

# Deterministic identities hold to rounding: float64 eps times a modest condition.
RTOL = 1e-9


def bonferroni_z(num_comparisons):
    return scipy.stats.norm.isf(ALPHA / (2 * num_comparisons))


@pytest.fixture
def x64():
    """Run one test in float64, without flipping x64 for the whole session."""
    with jax.enable_x64(True):
        yield


def random_ssm(rng, m=2, d=2):
    """A small, generic model: stable F, full H, PD covariances."""

    def pd(k):
        a = rng.normal(size=(k, k))
        return a @ a.T / k + 0.5 * np.eye(k)

    F = rng.normal(size=(m, m))
    F = 0.9 * F / np.abs(np.linalg.eigvals(F)).max()
    arrays = (F, rng.normal(size=(d, m)), pd(m), pd(d), rng.normal(size=m), 3 * pd(m))
    return ss.LinearGaussianSSM(*(jnp.asarray(a) for a in arrays))


@pytest.fixture
def problem(x64):
    """A 2-state, 2-observation model, 7 steps, with a partly and a fully missing y."""
    ssm = random_ssm(np.random.default_rng(0))
    y = ss.simulate(jax.random.key(0), ssm, num_timesteps=7)["y"]
    return ssm, y.at[2, 0].set(jnp.nan).at[4].set(jnp.nan)


def dense_joint(ssm, num_timesteps):
    """Mean and covariance of (z_{1:T}, y_{1:T}), flattened, built block by block."""
    F, H, Q, R, m0, P0 = (np.asarray(a, dtype=np.float64) for a in ssm)
    m, T = F.shape[0], num_timesteps
    means, marginals = [m0], [P0]
    for _ in range(T - 1):
        means.append(F @ means[-1])
        marginals.append(F @ marginals[-1] @ F.T + Q)
    cov_z = np.zeros((T * m, T * m))
    for s in range(T):
        for t in range(s, T):
            block = np.linalg.matrix_power(F, t - s) @ marginals[s]
            cov_z[t * m : (t + 1) * m, s * m : (s + 1) * m] = block
            cov_z[s * m : (s + 1) * m, t * m : (t + 1) * m] = block.T
    H_all, R_all = np.kron(np.eye(T), H), np.kron(np.eye(T), R)
    mean_z = np.concatenate(means)
    return (
        mean_z,
        cov_z,
        H_all @ mean_z,
        H_all @ cov_z @ H_all.T + R_all,
        cov_z @ H_all.T,
    )


def dense_posterior(ssm, y):
    """p(z | observed y) by the seed-000 section-5 conditioning formula."""
    T = y.shape[0]
    mean_z, cov_z, mean_y, cov_y, cov_zy = dense_joint(ssm, T)
    seen = ~np.isnan(np.asarray(y).ravel())
    gain = np.linalg.solve(cov_y[np.ix_(seen, seen)], cov_zy[:, seen].T).T
    mean = mean_z + gain @ (np.asarray(y).ravel()[seen] - mean_y[seen])
    return mean, cov_z - gain @ cov_zy[:, seen].T


def dense_log_likelihood(ssm, y):
    _, _, mean_y, cov_y, _ = dense_joint(ssm, y.shape[0])
    seen = ~np.isnan(np.asarray(y).ravel())
    gaussian = scipy.stats.multivariate_normal(mean_y[seen], cov_y[np.ix_(seen, seen)])
    return gaussian.logpdf(np.asarray(y).ravel()[seen])


def blocks(dense, m):
    """The (T, m, m) diagonal blocks of a (T m, T m) matrix."""
    T = dense.shape[0] // m
    return np.stack([dense[t * m : (t + 1) * m, t * m : (t + 1) * m] for t in range(T)])
