"""Virtual CPU devices, so that MCMC chains run in parallel by default.

On a CPU, JAX shows one device, and NumPyro then runs chains one after another,
compiling the sampling loop once per chain. Before JAX starts its CPU backend,
``numpyro_pgm`` asks XLA for :data:`DEFAULT_HOST_DEVICES` virtual host devices, so
``fit`` can run 4 chains at once with one compiled sampler (``pmap``). This changes
nothing on a GPU and nothing when:

- ``XLA_FLAGS`` already sets ``--xla_force_host_platform_device_count``;
- the environment variable ``NUMPYRO_PGM_HOST_DEVICES`` is set (``0`` turns the
  setup off; a positive integer asks for that many devices);
- JAX's backend was already initialised before ``numpyro_pgm`` was imported (then
  ``fit`` falls back to sequential chains, which also compile once).
"""

import os

__all__ = ["DEFAULT_HOST_DEVICES", "configure_host_devices"]

DEFAULT_HOST_DEVICES = 4
_FLAG = "--xla_force_host_platform_device_count"
_ENVIRONMENT = "NUMPYRO_PGM_HOST_DEVICES"


def configure_host_devices() -> int | None:
    """Ask XLA for virtual host devices if it is still possible and wanted.

    Returns
    -------
    int or None
        The number of devices requested, or ``None`` when nothing was changed.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return None
    requested = os.environ.get(_ENVIRONMENT)
    if requested is not None:
        try:
            count = int(requested)
        except ValueError as error:
            raise ValueError(
                f"{_ENVIRONMENT} must be a non-negative integer (0 turns the virtual "
                f"devices off); got {requested!r}."
            ) from error
    else:
        count = max(DEFAULT_HOST_DEVICES, os.cpu_count() or 1)
    if count <= 0:
        return None
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return None
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()
    return count
