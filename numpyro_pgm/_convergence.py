r"""MCMC convergence statistics in NumPy: rank-normalised R-hat, bulk/tail ESS, E-BFMI.

These reproduce arviz-stats (``arviz_stats.base.array_stats``: ``rhat(a, 0, 1)``,
``ess(a, 0, 1, method="bulk")``, ``ess(a, 0, 1, method="tail", prob=0.05)`` and
``bfmi``) step for step, to rounding error. They exist because importing
``arviz_stats.base`` takes about 0.65 s (its package pulls in xarray and pandas),
which on a warm :func:`numpyro_pgm.fit` was a quarter of the whole fit, while the
maths needs only NumPy and :func:`scipy.special.ndtri` (already imported by JAX;
``scipy.stats``, slow to import, is not used). They are also vectorised over
parameters, where arviz-stats loops over them in Python.

Every function takes draws shaped ``(chain, draw, *param_shape)`` and returns one
value per parameter (``param_shape``). A parameter with any NaN draw gets NaN, as
do all parameters when there are too few chains or fewer than 4 draws.

The method is that of Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021),
"Rank-normalization, folding, and localization: an improved :math:`\hat R` for
assessing convergence of MCMC", *Bayesian Analysis* 16(2), 667-718, with the
autocorrelation sum truncated by Geyer's (1992) initial positive and initial
monotone sequences (C. J. Geyer, "Practical Markov chain Monte Carlo",
*Statistical Science* 7(4), 473-483).
"""

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

__all__ = ["bfmi", "ess_bulk", "ess_tail", "rhat"]

_BLOM = 3 / 8  # Blom's offset in the normal scores of the ranks
_BLOCK = 1 << 22  # draws handled at once (32 MB of float64), to bound memory

Array = NDArray[np.float64]


def rhat(draws: ArrayLike) -> Array:
    r"""Rank-normalised split :math:`\hat R`: the larger of its bulk and tail forms.

    Each chain is split into halves (the middle draw of an odd count is dropped),
    giving :math:`M` chains of :math:`N` draws. The draws are replaced by normal
    scores of their ranks :math:`r` among all :math:`MN` draws (average ranks for
    ties), :math:`z = \Phi^{-1}((r - 3/8)/(MN + 1/4))`, and

    .. math::

        \hat R = \sqrt{\frac{B/W + N - 1}{N}}, \qquad
        B = N \operatorname{var}_m(\bar z_m), \quad
        W = \operatorname{mean}_m(s_m^2),

    with chain means :math:`\bar z_m` and variances :math:`s_m^2` (both
    variances with :math:`n - 1`). The tail form does the same for the folded
    draws :math:`|\theta - \operatorname{median}(\theta)|`.

    Parameters
    ----------
    draws : array_like
        Shape ``(chain, draw, *param_shape)``.

    Returns
    -------
    numpy.ndarray
        Shape ``param_shape``; NaN with fewer than 2 chains or 4 draws, with NaN
        draws, and for a parameter that never moves (:math:`0/0`).
    """
    return _per_parameter(draws, 2, _rhat_rank)


def ess_bulk(draws: ArrayLike) -> Array:
    r"""Bulk effective sample size: the ESS of the rank-normalised split chains.

    The split chains are rank-normalised as in :func:`rhat` and passed to the
    autocorrelation ESS :math:`MN/\hat\tau` (see :func:`_ess`).

    Parameters
    ----------
    draws : array_like
        Shape ``(chain, draw, *param_shape)``.

    Returns
    -------
    numpy.ndarray
        Shape ``param_shape``; NaN with fewer than 4 draws or with NaN draws; the
        number of split draws for a parameter that never moves.
    """
    return _per_parameter(draws, 1, lambda x: _ess(_z_scale(_split_chains(x))))


def ess_tail(draws: ArrayLike, prob: float = 0.05) -> Array:
    r"""Tail effective sample size: the smaller ESS of the two tail quantiles.

    For :math:`p` in ``prob`` and ``1 - prob``, the ESS of the split chains of
    the indicator :math:`I(\theta \le q_p)`, where :math:`q_p` is the sample
    quantile of all draws (linear interpolation, NumPy's default).

    Parameters
    ----------
    draws : array_like
        Shape ``(chain, draw, *param_shape)``.
    prob : float, default 0.05
        The lower tail probability.

    Returns
    -------
    numpy.ndarray
        Shape ``param_shape``; NaN as for :func:`ess_bulk`.
    """
    low, high = sorted((prob, 1 - prob))

    def tail(x: Array) -> Array:
        flat = x.reshape(len(x), -1)
        low_ess, high_ess = (
            _ess(_split_chains(x <= np.quantile(flat, p, axis=-1)[:, None, None]))
            for p in (low, high)
        )
        return np.where(high_ess < low_ess, high_ess, low_ess)  # as Python's min

    return _per_parameter(draws, 1, tail)


def bfmi(energy: ArrayLike) -> Array:
    r"""Energy Bayesian fraction of missing information (E-BFMI), per chain.

    .. math::

        \text{E-BFMI} = \frac{\operatorname{mean}_n (E_n - E_{n-1})^2}
                             {\operatorname{var}_n(E_n)},

    the variance with :math:`n - 1`, for the Hamiltonian energy :math:`E_n` of
    each chain's transitions.

    Parameters
    ----------
    energy : array_like
        Shape ``(chain, draw, *shape)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(chain, *shape)``.
    """
    energy = np.asarray(energy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(
            energy, axis=1, ddof=1
        )


def _per_parameter(
    draws: ArrayLike, min_chains: int, statistic: Callable[[Array], Array]
) -> Array:
    """Apply ``statistic`` to ``(param, chain, draw)`` blocks of the valid parameters.

    As arviz-stats' ``not_valid``: NaN for every parameter with fewer than
    ``min_chains`` chains or 4 draws, and for each parameter with a NaN draw.
    """
    values = np.asarray(draws, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"draws must be (chain, draw, ...); got shape {values.shape}")
    num_chains, num_draws, *shape = values.shape
    flat = np.moveaxis(values.reshape(num_chains, num_draws, math.prod(shape)), 2, 0)
    out = np.full(len(flat), np.nan)
    if num_chains < min_chains or num_draws < 4:
        return out.reshape(shape)
    valid = np.flatnonzero(~np.isnan(flat).any(axis=(1, 2)))
    step = max(1, _BLOCK // (num_chains * num_draws))
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, len(valid), step):
            rows = valid[start : start + step]
            out[rows] = statistic(flat[rows])  # fancy indexing: a contiguous copy
    return out.reshape(shape)


def _split_chains(x: Array) -> Array:
    """Split ``(param, chain, draw)`` chains into first and last halves (2 chain)."""
    half = x.shape[-1] // 2
    return np.concatenate((x[..., :half], x[..., x.shape[-1] - half :]), axis=1)


def _average_ranks(x: Array) -> Array:
    """Ranks along the last axis, ties given their average, NaN ranked NaN.

    As ``scipy.stats.rankdata(method="average", nan_policy="omit")`` on each row.
    """
    order = np.argsort(x, axis=-1)  # ties get one average rank: any order will do
    ordered = np.take_along_axis(x, order, axis=-1)
    n = x.shape[-1]
    position = np.arange(n)
    starts = np.ones(x.shape, bool)  # the first of each run of equal values
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    if starts.all():  # no ties
        ordered_ranks = np.broadcast_to(position + 1.0, x.shape)
    else:  # a run from positions i to j (0-based) gets (i + j) / 2 + 1
        ends = np.ones(x.shape, bool)
        ends[..., :-1] = starts[..., 1:]
        first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
        last = np.flip(
            np.minimum.accumulate(np.flip(np.where(ends, position, n), -1), axis=-1),
            -1,
        )
        ordered_ranks = (first + last) / 2 + 1
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, ordered_ranks, axis=-1)
    ranks[np.isnan(x)] = np.nan
    return ranks


def _z_scale(x: Array) -> Array:
    """Replace draws by normal scores of their ranks per parameter (Blom, 1958)."""
    flat = x.reshape(len(x), -1)
    size = flat.shape[-1]
    return ndtri((_average_ranks(flat) - _BLOM) / (size - 2 * _BLOM + 1)).reshape(
        x.shape
    )


def _rhat_rank(x: Array) -> Array:
    split = _split_chains(x)
    bulk = _rhat(_z_scale(split))
    median = np.median(split.reshape(len(split), -1), axis=-1)
    tail = _rhat(_z_scale(np.abs(split - median[:, None, None])))
    return np.where(tail > bulk, tail, bulk)  # as Python's max (NaN tail: bulk)


def _rhat(z: Array) -> Array:
    """Split R-hat of ``(param, chain, draw)`` values."""
    n = z.shape[-1]
    between = n * np.var(np.mean(z, axis=-1), axis=-1, ddof=1)
    within = np.mean(np.var(z, axis=-1, ddof=1), axis=-1)
    return np.sqrt((between / within + n - 1) / n)


def _next_fast_len(target: int) -> int:
    """Return the smallest 5-smooth number >= target, as scipy.fftpack's does."""
    best = 1 << (target - 1).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            quotient = -(-target // power35)  # the power of 2 needed: >= this
            best = min(best, power35 << (quotient - 1).bit_length())
            power35 *= 3
        power5 *= 5
    return best


def _autocov(x: Array) -> Array:
    """Autocovariances at every lag along the last axis, by FFT (biased, /n)."""
    n = x.shape[-1]
    m = _next_fast_len(2 * n)
    spectrum = np.fft.rfft(x - x.mean(axis=-1, keepdims=True), n=m, axis=-1)
    spectrum *= np.conjugate(spectrum)
    return np.fft.irfft(spectrum, n=m, axis=-1)[..., :n] / n


def _ess(x: ArrayLike) -> Array:
    r"""Effective sample size of ``(param, chain, draw)`` values.

    With :math:`M` chains of :math:`N` draws, autocovariances
    :math:`\gamma_{m,t}`, :math:`W = \operatorname{mean}_m \gamma_{m,0}
    N/(N-1)` and :math:`\widehat{\operatorname{var}}^+ = W (N-1)/N +
    \operatorname{var}_m(\bar\theta_m)` (the last term for :math:`M > 1`), the
    autocorrelations are :math:`\hat\rho_0 = 1`, :math:`\hat\rho_t = 1 - (W -
    \operatorname{mean}_m \gamma_{m,t}) / \widehat{\operatorname{var}}^+` and

    .. math::

        \widehat{\mathrm{ESS}} = \frac{MN}{\max(\hat\tau, 1/\log_{10}(MN))},
        \qquad \hat\tau = -1 + 2 \sum_{t=0}^{2K-1} \tilde\rho_t + \tilde\rho_{2K}.

    Geyer's initial positive sequence stops at the first pair
    :math:`P_k = \hat\rho_{2k} + \hat\rho_{2k+1}` with :math:`P_k \le 0` or when
    :math:`2k + 1 \ge N - 3` (that :math:`k` is :math:`K`). The initial monotone
    sequence lowers each pair :math:`k < K` whose sum exceeds that of the pair
    before (as lowered) to two halves of it, so the pair sums become their
    running minimum. The final term :math:`\tilde\rho_{2K} = \hat\rho_{2K}`
    when :math:`P_K \ge 0` (:math:`K \ge 1`) or :math:`\hat\rho_{2K} > 0`
    (arviz-stats' "improve estimation"), else 0. Values that never move
    (range below ``finfo(float).resolution``) have ESS :math:`MN`.
    """
    x = np.asarray(x, dtype=np.float64)
    _, num_chains, n = x.shape
    constant = np.ptp(x, axis=(1, 2)) < np.finfo(float).resolution
    acov = _autocov(x)
    # Means over chains of contiguous rows, so NumPy sums them in arviz-stats' order.
    mean_acov = np.mean(np.ascontiguousarray(np.swapaxes(acov, 1, 2)), axis=-1)
    mean_var = mean_acov[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if num_chains > 1:
        var_plus += np.var(np.mean(x, axis=-1), axis=-1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - mean_acov) / var_plus[:, None]
    rho[:, 0] = 1.0

    num_pairs = n // 2
    even, odd = rho[:, 0 : 2 * num_pairs : 2], rho[:, 1 : 2 * num_pairs : 2]
    pairs = even + odd
    k = np.arange(num_pairs)
    stop = ~(pairs > 0) | (2 * k + 1 >= n - 3)
    last_pair = np.argmax(stop, axis=-1)  # K: the first pair where the loop stops
    # Initial monotone sequence: pair k > 0 compared with the running minimum of
    # the sums before it (a lowered pair's two halves sum back to that minimum).
    before = np.minimum.accumulate(pairs, axis=-1)[:, :-1]
    lowered = np.zeros(pairs.shape, bool)
    lowered[:, 1:] = pairs[:, 1:] > before
    halves = np.zeros(pairs.shape)
    halves[:, 1:] = before / 2.0
    included = k < last_pair[:, None]
    monotone = np.stack(
        (np.where(lowered, halves, even), np.where(lowered, halves, odd)), axis=-1
    )
    total = np.sum(np.where(included[..., None], monotone, 0.0), axis=(1, 2))
    rows = np.arange(len(x))
    final = even[rows, last_pair]
    keep = ((last_pair >= 1) & (pairs[rows, last_pair] >= 0)) | (final > 0)
    tau = -1.0 + 2.0 * total + np.where(keep, final, 0.0)
    size = num_chains * n
    floor = 1 / np.log10(size)
    ess = size / np.where(floor > tau, floor, tau)  # as Python's max
    ess[np.isnan(rho[:, 1])] = np.nan
    return np.where(constant, float(size), ess)
