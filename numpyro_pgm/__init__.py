"""numpyro_pgm: classic probabilistic generative models on NumPyro.

One :func:`fit` runs NUTS, HMC, Gibbs, Laplace, MAP or SVI on a NumPyro model and
returns one kind of result, an :class:`InferenceResult` whose ``to_datatree()`` is an
ArviZ ``DataTree``; :func:`check` reports convergence the same way for every method.
"""

from ._validation import allow_missing as allow_missing
from ._validation import missing_ok_arguments as missing_ok_arguments
from .diagnostics import CheckReport as CheckReport
from .diagnostics import ConvergenceWarning as ConvergenceWarning
from .diagnostics import check as check
from .inference import GUIDES as GUIDES
from .inference import METHODS as METHODS
from .inference import LaplaceError as LaplaceError
from .inference import SVIError as SVIError
from .inference import fit as fit
from .inference._inspect import ModelError as ModelError
from .results import InferenceResult as InferenceResult
from .results import load as load

__all__ = [
    "CheckReport",
    "ConvergenceWarning",
    "GUIDES",
    "InferenceResult",
    "LaplaceError",
    "METHODS",
    "ModelError",
    "SVIError",
    "allow_missing",
    "check",
    "fit",
    "load",
    "missing_ok_arguments",
]

__version__ = "0.1.0"
