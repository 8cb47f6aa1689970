"""numpyro_pgm: classic probabilistic generative models on NumPyro.

One :func:`fit` runs NUTS, HMC, Gibbs, Laplace, MAP or SVI on a NumPyro model and
returns one kind of result, an :class:`InferenceResult` whose ``to_datatree()`` is an
ArviZ ``DataTree``; :func:`check` reports convergence the same way for every method.
"""

from ._devices import configure_host_devices

configure_host_devices()

from ._compilation_cache import configure_compilation_cache  # noqa: E402

configure_compilation_cache()

from ._compilation_cache import (  # noqa: E402
    disable_compilation_cache as disable_compilation_cache,
)
from ._compilation_cache import (  # noqa: E402
    enable_compilation_cache as enable_compilation_cache,
)
from ._compilation_cache import (  # noqa: E402
    prune_compilation_cache as prune_compilation_cache,
)
from ._validation import allow_missing as allow_missing  # noqa: E402
from ._validation import missing_ok_arguments as missing_ok_arguments  # noqa: E402
from .compare import Comparison as Comparison  # noqa: E402
from .compare import compare as compare  # noqa: E402
from .diagnostics import CheckReport as CheckReport  # noqa: E402
from .diagnostics import ConvergenceWarning as ConvergenceWarning  # noqa: E402
from .diagnostics import check as check  # noqa: E402
from .inference import GUIDES as GUIDES  # noqa: E402
from .inference import METHODS as METHODS  # noqa: E402
from .inference import LaplaceError as LaplaceError  # noqa: E402
from .inference import SVIError as SVIError  # noqa: E402
from .inference import fit as fit  # noqa: E402
from .inference._inspect import ModelError as ModelError  # noqa: E402
from .report import report as report  # noqa: E402
from .results import InferenceResult as InferenceResult  # noqa: E402
from .results import load as load  # noqa: E402

__all__ = [
    "CheckReport",
    "Comparison",
    "ConvergenceWarning",
    "GUIDES",
    "InferenceResult",
    "LaplaceError",
    "METHODS",
    "ModelError",
    "SBCResult",
    "SVIError",
    "allow_missing",
    "check",
    "compare",
    "disable_compilation_cache",
    "enable_compilation_cache",
    "prune_compilation_cache",
    "fit",
    "load",
    "missing_ok_arguments",
    "plots",
    "report",
    "sbc",
]

__version__ = "0.1.0"

# Plotting and SBC pull in matplotlib and arviz-plots (about a second of imports):
# loaded on first use, so `fit` starts fast. `compare` and `report` are imported
# above (they import their heavy dependencies inside), because a lazily bound
# function named like its module would be replaced by the module as soon as
# anything imported `numpyro_pgm.compare` or `numpyro_pgm.report`.
_LAZY = {
    "plots": (".plots", None),
    "sbc": (".calibration", "sbc"),
    "SBCResult": (".calibration", "SBCResult"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
