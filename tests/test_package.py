"""The public surface: one import path for the zoo, documented names, doctests."""

import doctest
import importlib
import importlib.metadata
import importlib.util
import inspect
import subprocess
import sys

import pytest

import numpyro_pgm

PUBLIC_MODULES = [
    "numpyro_pgm",
    "numpyro_pgm.inference",
    "numpyro_pgm.results",
    "numpyro_pgm.diagnostics",
    "numpyro_pgm.datasets",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name):
    module = importlib.import_module(module_name)
    assert module.__doc__
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


def test_zoo_has_one_import_path():
    # The zoo is installed as numpyro_pgm.models; the distribution installs no
    # top-level `models` package that could collide with other projects.
    assert importlib.util.find_spec("numpyro_pgm.models") is not None
    top_level = importlib.metadata.distribution("numpyro_pgm").read_text(
        "top_level.txt"
    )
    assert top_level.split() == ["numpyro_pgm"]


def test_fit_docstring_example_runs():
    from numpyro_pgm.inference import entry_point

    failures, attempted = doctest.testmod(entry_point, raise_on_error=False)
    assert attempted > 0 and failures == 0


def test_virtual_devices_were_configured_for_parallel_chains():
    import jax

    # conftest imports jax but does not start its backend, so numpyro_pgm could
    # still ask for virtual CPU devices.
    assert jax.local_device_count() >= 4
    assert numpyro_pgm.inference.default_chain_method(4) == "parallel"


def test_public_functions_stay_functions_after_their_modules_are_imported():
    # `compare` and `report` share their names with their modules; importing the
    # modules (as report, plots or user code do) must not replace the functions.
    code = (
        "import numpyro_pgm as pgm\n"
        "pgm.plots; pgm.sbc\n"
        "import numpyro_pgm.compare, numpyro_pgm.report, numpyro_pgm.calibration\n"
        "assert callable(pgm.compare) and callable(pgm.report), "
        "(pgm.compare, pgm.report)\n"
        "assert callable(pgm.sbc)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
