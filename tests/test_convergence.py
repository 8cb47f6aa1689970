"""numpyro_pgm._convergence reproduces arviz-stats' R-hat, ESS and E-BFMI."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from arviz_stats.base import array_stats
from scipy.fftpack import next_fast_len
from scipy.stats import rankdata

from numpyro_pgm import _convergence as cv

RTOL = 1e-10


def ar1(rng, phi, chains, draws, shape=(), noise=None):
    """AR(1) chains x_t = phi x_{t-1} + e_t, started in the stationary law."""
    e = rng.normal(size=(chains, draws, *shape)) if noise is None else noise
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1 - np.minimum(np.square(phi), 0.999))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def reference(draws):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return {
            "rhat": array_stats.rhat(draws, 0, 1),
            "ess_bulk": array_stats.ess(draws, 0, 1, method="bulk"),
            "ess_tail": array_stats.ess(draws, 0, 1, method="tail", prob=0.05),
        }


def ours(draws):
    return {
        "rhat": cv.rhat(draws),
        "ess_bulk": cv.ess_bulk(draws),
        "ess_tail": cv.ess_tail(draws),
    }


def agrees(mine, ref) -> bool:
    """Same shape, NaN and infinities in the same places, else within RTOL."""
    mine, ref = np.asarray(mine), np.asarray(ref)
    if mine.shape != ref.shape:
        return False
    finite = np.isfinite(ref)
    same_special = np.array_equal(mine[~finite], ref[~finite], equal_nan=True)
    return same_special and np.allclose(mine[finite], ref[finite], rtol=RTOL, atol=0)


def _cases():
    rng = np.random.default_rng(20210601)
    cases = {}
    for phi in (-0.9, -0.5, 0.0, 0.5, 0.9, 0.95, 0.99):
        cases[f"ar1 phi={phi}"] = ar1(rng, phi, 4, 1000, (3,))
    cases["ar1 phi=0.9, 8 chains x 333 (odd)"] = ar1(rng, 0.9, 8, 333, (2,))
    cases["ar1 phi=0.5, 3 chains x 101 (odd)"] = ar1(rng, 0.5, 3, 101, (2,))
    cases["heavy tails (t, 1 dof)"] = ar1(
        rng, 0.7, 4, 500, noise=rng.standard_t(1.0, size=(4, 500, 4))
    )
    cases["heavy tails (t, 2.5 dof)"] = rng.standard_t(2.5, size=(4, 400, 4))
    cases["discrete: Poisson(0.3), ties"] = rng.poisson(0.3, size=(4, 500, 4)) * 1.0
    cases["discrete: 3 values, ties"] = rng.integers(0, 3, size=(4, 60, 5)) * 1.0
    cases["rounded AR(1): ties"] = np.round(ar1(rng, 0.9, 4, 400, (4,)), 1)
    constant = rng.normal(size=(4, 100, 3))
    constant[..., 0] = 1.0
    constant[..., 1] = np.arange(4.0)[:, None]  # constant within each chain
    cases["constant parameters"] = constant
    stuck = rng.normal(size=(4, 200, 2))
    stuck[1, :, 0] = 0.7  # one chain never moves
    cases["one parameter stuck in one chain"] = stuck
    nan = rng.normal(size=(4, 100, 3))
    nan[2, 5, 0] = np.nan
    nan[..., 1] = np.nan
    cases["NaN draws, all-NaN parameter"] = nan
    infinite = rng.normal(size=(4, 100, 3))
    infinite[0, :60, 0] = np.inf
    infinite[1, :, 1] = -np.inf
    infinite[..., 2] = np.inf
    infinite[0, 0, 2] = 0.0
    cases["infinite draws"] = infinite
    cases["1 chain"] = ar1(rng, 0.5, 1, 200, (2,))
    cases["2 chains x 4 draws"] = rng.normal(size=(2, 4, 3))
    cases["2 chains x 5 draws"] = rng.normal(size=(2, 5, 3))
    cases["4 chains x 3 draws (too few)"] = rng.normal(size=(4, 3, 2))
    # Short chains reach the end of Geyer's sequence: its last term is then kept
    # whenever its pair sum is >= 0, even if the term itself is negative.
    cases["short chains: 4 x 12, many parameters"] = rng.normal(size=(4, 12, 200))
    cases["short chains: 2 x 20, many parameters"] = rng.normal(size=(2, 20, 200))
    cases["scalar parameter"] = ar1(rng, 0.8, 4, 300)
    cases["matrix parameter"] = ar1(rng, 0.6, 4, 150, (2, 3))
    cases["3-d parameter"] = rng.normal(size=(2, 50, 2, 1, 3))
    cases["no parameters"] = rng.normal(size=(4, 50, 0))
    cases["tiny spread on a large offset"] = 5 + 1e-9 * rng.normal(size=(4, 300, 2))
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", CASES)
def test_agrees_with_arviz_stats(name):
    draws = CASES[name]
    expected = reference(draws)
    got = ours(draws)  # and no warning: the tests turn warnings into errors
    for stat in expected:
        assert agrees(got[stat], expected[stat]), (stat, got[stat], expected[stat])


def test_agrees_over_many_random_chains():
    """Random AR(1) chains, chain counts, draw counts (odd and even) and ties."""
    rng = np.random.default_rng(7)
    for trial in range(25):
        chains, draws = int(rng.integers(1, 9)), int(rng.integers(4, 300))
        phi = rng.uniform(-0.95, 0.995, size=20)
        noise = rng.standard_t(rng.uniform(1, 30), size=(chains, draws, 20))
        x = ar1(rng, phi, chains, draws, noise=noise)
        if trial % 3 == 0:
            x = np.round(x)
        expected, got = reference(x), ours(x)
        for stat in expected:
            assert agrees(got[stat], expected[stat]), (trial, stat)


def test_geyer_ess_of_raw_values_agrees_with_arviz_stats():
    """The ESS core on values as they are (arviz-stats' "identity" ESS)."""
    rng = np.random.default_rng(9)
    for chains, draws, phi in (
        (4, 12, 0.0),
        (2, 21, 0.3),
        (4, 500, 0.95),
        (1, 50, -0.7),
    ):
        x = ar1(rng, phi, chains, draws, (100,))
        x[:, :, 0] = np.inf  # NaN autocovariances: NaN ESS
        x[:, :, 1] = 2.0
        with np.errstate(all="ignore"):
            expected = array_stats.ess(x, 0, 1, method="identity")
            got = cv._ess(np.moveaxis(x, 2, 0))
        assert agrees(got, expected)
        assert np.isnan(got[0]) and got[1] == chains * draws


def test_bfmi_agrees_with_arviz_stats():
    rng = np.random.default_rng(3)
    for phi in (0.0, 0.5, 0.99):
        energy = ar1(rng, phi, 4, 300)
        expected = array_stats.bfmi(energy, 0, 1)
        assert cv.bfmi(energy).shape == (4,)
        assert agrees(cv.bfmi(energy), expected)
    walk = np.cumsum(rng.normal(size=(4, 500)), axis=1)
    assert np.all(cv.bfmi(walk) < 0.3)


def test_average_ranks_and_fft_length_match_scipy():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, size=(3, 40)) * 1.0
    x[0, 3] = np.nan
    x[1, :4] = [np.inf, -np.inf, -0.0, 0.0]
    expected = np.stack([rankdata(row, nan_policy="omit") for row in x])
    np.testing.assert_array_equal(cv._average_ranks(x), expected)
    assert all(cv._next_fast_len(n) == next_fast_len(n) for n in range(1, 5000))


def test_a_wrong_variant_disagrees():
    """The comparison has power: dropping folding, splitting or ranks shows up."""
    rng = np.random.default_rng(11)
    # Chains that agree in location but not in scale: only the folded R-hat sees it.
    scales = np.array([1.0, 1.0, 4.0, 4.0])[:, None]
    draws = rng.normal(size=(4, 1000)) * scales
    expected = reference(draws)["rhat"]
    assert expected > 1.1 and agrees(cv.rhat(draws), expected)
    no_folding = cv._rhat(cv._z_scale(cv._split_chains(draws[None])))[0]
    assert not agrees(no_folding, expected) and no_folding < 1.01

    # Chains that drift the same way: only the split R-hat sees it.
    drift = np.linspace(-2, 2, 1000) + rng.normal(size=(4, 1000))
    expected = reference(drift)["rhat"]
    assert expected > 1.1 and agrees(cv.rhat(drift), expected)
    folded = np.abs(drift - np.median(drift))
    no_split = max(cv._rhat(cv._z_scale(x[None]))[0] for x in (drift, folded))
    assert not agrees(no_split, expected) and no_split < 1.01

    # Heavy tails: bulk ESS without the rank normalisation is another number.
    heavy = rng.standard_t(1.0, size=(4, 1000))
    expected = reference(heavy)["ess_bulk"]
    assert agrees(cv.ess_bulk(heavy), expected)
    assert not agrees(cv._ess(cv._split_chains(heavy[None]))[0], expected)


def test_fit_with_nuts_checks_does_not_import_arviz_stats():
    script = textwrap.dedent(
        """
        import sys
        import warnings

        import jax
        import numpy as np
        import numpyro
        import numpyro.distributions as dist

        import numpyro_pgm as pgm


        def model(y=None):
            mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


        warnings.simplefilter("ignore")
        result = pgm.fit(
            jax.random.key(0), model, data={"y": np.array([0.1, -0.3, 0.5])},
            method="nuts", num_warmup=100, num_samples=100, num_chains=2,
            progress_bar=False, checks=True,
        )
        names = [f.name for f in pgm.check(result)]
        assert {"rhat", "ess_bulk", "ess_tail", "ebfmi"} <= set(names), names
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "arviz_stats")
        print("loaded:", loaded)
        """
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=300,
    )
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip().splitlines()[-1] == "loaded: []", output.stdout
