"""Type aliases shared by the public API."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

__all__ = ["Array", "ArrayLike", "Model", "Data", "Draws", "GibbsUpdate"]

type Array = jax.Array
"""A JAX array (what the library returns from jitted code)."""

type Model = Callable[..., Any]
"""A NumPyro model: a Python function whose keyword arguments come from ``data``."""

type Data = Mapping[str, Any]
"""The model's keyword arguments: observations, sizes and hyperparameters."""

type Draws = Mapping[str, np.ndarray]
"""Draws per site, each shaped ``(chain, draw, *site_shape)``."""

type GibbsUpdate = Callable[[Array, Mapping[str, Array], Data], Mapping[str, Array]]
"""A full-conditional update ``update(rng_key, values, data) -> new values``."""
