r"""Spectral initialisation of matrix factorisation, for CAVI and the samplers.

The posterior of :func:`numpyro_pgm.models.matrix_factorization.model` has local
modes: from a random start (the seed's "Initialize the variational parameters
randomly", ``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization"), CAVI
and Gibbs end in a worse mode in a few to twenty percent of runs on small
problems. The spectral start of matrix completion avoids this: with
:math:`\mathcal O` a uniform sample of the cells, the rescaled zero-filled matrix

.. math::

    \hat R = \frac{NM}{|\mathcal O|} P_{\mathcal O}(R - \text{offset}), \qquad
    \hat R \approx A_K S_K B_K^\top \ \text{(rank-}K\text{ SVD)}, \qquad
    U_0 = A_K S_K^{1/2},\ V_0 = B_K S_K^{1/2},

is an unbiased estimate of the full matrix whose top singular subspaces fall in
the basin of the global optimum when enough cells are observed [1]_ [2]_. Its
zero-filled entries add noise of spectral norm about
:math:`\tau = s(\sqrt N + \sqrt M)`, :math:`s^2 = \overline{r^2} NM /
|\mathcal O|`, so the singular values are soft-thresholded at :math:`\tau`
(universal singular value thresholding [3]_): on very sparse data a component
that is noise starts near zero instead of at a large random value. A floor of
:math:`0.01\, \mathrm{sd}(r) \sqrt{NM}` (entries of about 1% of the rating sd)
keeps every component away from the saddle point at zero.

References
----------
.. [1] R. H. Keshavan, A. Montanari and S. Oh, "Matrix completion from a few
   entries", IEEE Trans. Inf. Theory 56 (2010).
.. [2] P. Jain, P. Netrapalli and S. Sanghavi, "Low-rank matrix completion using
   alternating minimization", STOC (2013).
.. [3] S. Chatterjee, "Matrix estimation by universal singular value
   thresholding", Ann. Statist. 43 (2015).
"""

import hashlib
from typing import Any

import numpy as np
from jax.typing import ArrayLike
from scipy import sparse
from scipy.sparse.linalg import svds

from .matrix_factorization_checks import check_ratings

__all__ = ["spectral_init"]

_DENSE_CELLS = 250_000
_CACHE: dict[str, dict[str, np.ndarray]] = {}
_CACHE_SIZE = 4


def spectral_init(
    user: ArrayLike,
    item: ArrayLike,
    rating: ArrayLike,
    *,
    num_users: int,
    num_items: int,
    num_factors: int,
    offset: float = 0.0,
    biases: bool = False,
    hyperprior: bool = False,
    **model_kwargs: Any,
) -> dict[str, np.ndarray]:
    r"""Return initial values of the latent sites from a truncated SVD.

    Parameters
    ----------
    user, item, rating : array_like of shape (num_ratings,)
        The observed entries, as in the model.
    num_users, num_items, num_factors : int
        :math:`N`, :math:`M` and :math:`K`.
    offset : float
        The model's fixed global mean, removed before the SVD.
    biases, hyperprior : bool
        Add zero biases, and precisions (factor precisions
        :math:`\sqrt{K / \mathrm{var}(r)}`, so that :math:`u^\top v` varies like
        the ratings; the noise precision from the residuals of the start), so the
        values cover every latent site of the model.
    **model_kwargs
        Other model arguments, accepted and ignored (so ``spectral_init(**data)``
        works).

    Returns
    -------
    dict of str to numpy.ndarray
        ``user_factors`` ``(num_factors, num_users)``, ``item_factors``
        ``(num_factors, num_items)``, and ``user_bias``, ``item_bias`` and the
        three precisions when the model has them; for ``init_to_value`` of NUTS or
        the start of CAVI.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import matrix_factorization as mf
    >>> from numpyro_pgm.models.matrix_factorization_init import spectral_init
    >>> sim = mf.simulate(jax.random.key(0), num_users=20, num_items=15,
    ...                   num_factors=2, num_ratings=200)
    >>> init = spectral_init(sim["user"], sim["item"], sim["rating"],
    ...                      num_users=20, num_items=15, num_factors=2)
    >>> init["user_factors"].shape, init["item_factors"].shape
    ((2, 20), (2, 15))
    """
    user, item, rating = check_ratings(
        user,
        item,
        rating,
        num_users=num_users,
        num_items=num_items,
        num_factors=num_factors,
    )
    user, item = np.asarray(user), np.asarray(item)
    residual = np.asarray(rating, dtype=np.float64) - offset
    digest = hashlib.sha1(repr((num_users, num_items, num_factors)).encode())
    for array in (user, item, residual):
        digest.update(np.ascontiguousarray(array).tobytes())
    key = f"{digest.hexdigest()}-{bool(biases)}-{bool(hyperprior)}"
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _spectral(
            user, item, residual, num_users, num_items, num_factors, biases, hyperprior
        )
    return {name: value.copy() for name, value in _CACHE[key].items()}


def _spectral(
    user, item, residual, num_users, num_items, num_factors, biases, hyperprior
):
    scale = num_users * num_items / residual.size
    matrix = sparse.coo_matrix(
        (scale * residual, (user, item)), shape=(num_users, num_items)
    ).tocsr()
    rank = min(num_factors, num_users, num_items)
    if num_users * num_items <= _DENSE_CELLS or rank >= min(matrix.shape) - 1:
        left, values, right = np.linalg.svd(matrix.toarray(), full_matrices=False)
        left, values, right = left[:, :rank], values[:rank], right[:rank]
    else:
        left, values, right = svds(matrix, k=rank, random_state=0)
    cells = num_users * num_items
    threshold = np.sqrt(np.mean(residual**2) * scale) * (
        np.sqrt(num_users) + np.sqrt(num_items)
    )
    floor = 0.01 * max(np.std(residual), 1e-3) * np.sqrt(cells)
    root = np.sqrt(np.maximum(values - threshold, floor))
    user_factors = np.zeros((num_factors, num_users))
    item_factors = np.zeros((num_factors, num_items))
    user_factors[:rank] = (left * root).T
    item_factors[:rank] = root[:, None] * right
    init = {"user_factors": user_factors, "item_factors": item_factors}
    if biases:
        init["user_bias"] = np.zeros(num_users)
        init["item_bias"] = np.zeros(num_items)
    if hyperprior:
        fitted = np.sum(user_factors[:, user] * item_factors[:, item], axis=0)
        # Factor precisions that make u^T v as variable as the ratings: the
        # thresholded factors may be near zero and would give huge precisions.
        balanced = np.sqrt(num_factors / max(np.var(residual), 1e-6))
        init["user_precision"] = np.asarray(balanced)
        init["item_precision"] = np.asarray(balanced)
        init["obs_precision"] = np.asarray(
            1.0 / max(np.mean((residual - fitted) ** 2), 1e-6)
        )
    return init
