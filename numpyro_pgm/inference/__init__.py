"""Inference methods, each a thin layer over NumPyro, and the one ``fit``."""

from .entry_point import METHODS as METHODS
from .entry_point import fit as fit
from .laplace import LaplaceError as LaplaceError
from .mcmc import default_chain_method as default_chain_method
from .svi import GUIDES as GUIDES
from .svi import SVIError as SVIError

__all__ = [
    "GUIDES",
    "LaplaceError",
    "METHODS",
    "SVIError",
    "default_chain_method",
    "fit",
]
