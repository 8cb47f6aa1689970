"""Baselines of the MovieLens matrix factorisation case study (:mod:`mf_movielens`).

The global mean, ridge-regularised user and item biases (alternating exact
updates), and a truncated SVD (``scipy.sparse.linalg.svds``) of the bias-corrected,
zero-filled rating matrix. Their predictive intervals are Gaussian with the
training residual sd.
"""

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import sparse, stats
from scipy.sparse.linalg import svds

__all__ = ["BASELINES", "baselines"]

BASELINES = ("global mean", "biases", "truncated SVD")


def _gaussian_interval(
    mean: np.ndarray, sd: float, prob: float
) -> tuple[np.ndarray, np.ndarray]:
    half = stats.norm.ppf(0.5 + prob / 2) * sd  # a central prob interval
    return mean - half, mean + half


def _biases(train, num_users, num_items, penalty=5.0, num_iterations=10):
    """Ridge-regularised user and item biases by alternating exact updates."""
    mean = train["rating"].mean()
    user_bias, item_bias = np.zeros(num_users), np.zeros(num_items)
    user_count = np.bincount(train["user"], minlength=num_users) + penalty
    item_count = np.bincount(train["item"], minlength=num_items) + penalty
    for _ in range(num_iterations):
        residual = train["rating"] - mean - item_bias[train["item"]]
        user_bias = np.bincount(train["user"], residual, num_users) / user_count
        residual = train["rating"] - mean - user_bias[train["user"]]
        item_bias = np.bincount(train["item"], residual, num_items) / item_count
    return mean, user_bias, item_bias


def baselines(
    data: Mapping[str, Any], num_factors: int, prob: float = 0.9
) -> dict[str, dict]:
    """Fit the three baselines; return test predictions, ``prob`` intervals, times."""
    train, test = data["train"], data["test"]
    num_users, num_items = data["num_users"], data["num_items"]
    out = {}

    def record(name, start, fitted, predicted):
        sd = float(np.std(train["rating"] - fitted))
        out[name] = {
            "mean": predicted,
            "interval": _gaussian_interval(predicted, sd, prob),
            "time": time.perf_counter() - start,
        }

    start = time.perf_counter()
    mean = train["rating"].mean()
    record(
        "global mean",
        start,
        np.full(train["rating"].size, mean),
        np.full(test["rating"].size, mean),
    )
    start = time.perf_counter()
    mean, user_bias, item_bias = _biases(train, num_users, num_items)

    def bias_part(part):
        return mean + user_bias[part["user"]] + item_bias[part["item"]]

    record("biases", start, bias_part(train), bias_part(test))
    start = time.perf_counter()
    residual = sparse.csr_matrix(
        (train["rating"] - bias_part(train), (train["user"], train["item"])),
        shape=(num_users, num_items),
    )
    rank = min(num_factors, min(residual.shape) - 1)
    left, values, right = svds(residual, k=rank, random_state=0)
    left = left * values

    def svd_part(part):
        low_rank = np.sum(left[part["user"]] * right.T[part["item"]], axis=1)
        return bias_part(part) + low_rank

    record("truncated SVD", start, svd_part(train), svd_part(test))
    return out
