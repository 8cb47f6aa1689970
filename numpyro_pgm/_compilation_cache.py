"""JAX's persistent compilation cache, on by default.

On a CPU, XLA compilation is most of a small model's first fit (1.5-2.5 s of
3-5 s for the reference workloads of ``benchmarks/nuts_cpu.py``). When
``numpyro_pgm`` is imported it points JAX's persistent compilation cache at
:data:`DEFAULT_CACHE_DIR`, so a later process that fits the same model to data
of the same shapes loads its compiled sampler from disk instead of compiling it
again (a warm start; the results are the same, the programs are the same). The
cache holds programs that took at least :data:`MIN_COMPILE_SECONDS` to compile,
of any JAX code in the process, and is capped at :data:`MAX_CACHE_BYTES` (least
recently used entries go first).

Nothing is changed when:

- the environment variable ``NUMPYRO_PGM_CACHE_DIR`` is ``off`` (or ``0``,
  ``false``, ``none``, or empty); any other value names the folder to use;
- JAX's own cache is already configured, through ``JAX_COMPILATION_CACHE_DIR``,
  ``jax.config.update("jax_compilation_cache_dir", ...)`` or
  ``JAX_ENABLE_COMPILATION_CACHE=false``.

:func:`enable_compilation_cache` and :func:`disable_compilation_cache` switch it
in a running process. As JAX's documentation warns, a compilation cache is
trusted code: the default folder is created readable by its owner only; do not
point the cache at a folder others can write to.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = [
    "DEFAULT_CACHE_DIR",
    "MAX_CACHE_BYTES",
    "MIN_COMPILE_SECONDS",
    "configure_compilation_cache",
    "disable_compilation_cache",
    "enable_compilation_cache",
]

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "numpyro_pgm" / "jax"
MIN_COMPILE_SECONDS = 0.1
MAX_CACHE_BYTES = 2**30
_ENVIRONMENT = "NUMPYRO_PGM_CACHE_DIR"
_OFF = ("", "0", "off", "false", "none")


def _requested_directory() -> Path | None:
    value = os.environ.get(_ENVIRONMENT)
    if value is None:
        return DEFAULT_CACHE_DIR
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's persistent compilation cache in ``directory``.

    Programs that take at least :data:`MIN_COMPILE_SECONDS` to compile are
    written there and read back by later processes; the folder is capped at
    :data:`MAX_CACHE_BYTES`.

    Parameters
    ----------
    directory : path, optional
        The cache folder (created if missing). Defaults to
        ``$NUMPYRO_PGM_CACHE_DIR`` or ``~/.cache/numpyro_pgm/jax``.

    Returns
    -------
    pathlib.Path
        The cache folder.

    Raises
    ------
    ValueError
        If ``directory`` exists and is not a folder, or cannot be created.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    path = Path(directory).expanduser() if directory else _requested_directory()
    if path is None:
        path = DEFAULT_CACHE_DIR
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"directory must be a folder the compilation cache can write to; got "
            f"{str(path)!r} ({error.strerror}). Pass another folder, or turn the "
            f"cache off with {_ENVIRONMENT}=off."
        ) from error
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    # JAX decides once per process, at its first compilation, whether it uses a
    # cache: start that decision afresh so the folder takes effect now.
    compilation_cache.reset_cache()
    return path


def disable_compilation_cache() -> None:
    """Turn JAX's persistent compilation cache off for the rest of the process."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()


def configure_compilation_cache() -> Path | None:
    """Turn the cache on at import unless the user chose otherwise (module doc).

    Returns
    -------
    pathlib.Path or None
        The cache folder, or ``None`` when nothing was changed.
    """
    import jax

    directory = _requested_directory()
    if directory is None:
        return None
    if jax.config.jax_compilation_cache_dir is not None:
        return None
    if not jax.config.jax_enable_compilation_cache:
        return None
    try:
        return enable_compilation_cache(directory)
    except ValueError as error:
        # An unwritable folder must not stop the import: fits then compile as
        # without a cache.
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)
        return None
