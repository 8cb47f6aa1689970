"""JAX's persistent compilation cache, on by default.

On a CPU, XLA compilation is most of a small model's first fit (1.5-2.5 s of
3-5 s for the reference workloads of ``benchmarks/nuts_cpu.py``). When
``numpyro_pgm`` is imported it points JAX's persistent compilation cache at
:data:`DEFAULT_CACHE_DIR`, so a later process that fits the same model to data
of the same shapes loads its compiled programs from disk instead of compiling
them again (a warm start; the results are the same, the programs are the same).

The cache keeps every program (:data:`MIN_COMPILE_SECONDS` is 0), of any JAX
code in the process, the one-operation programs of eager JAX code included:
NumPyro builds an AutoGuide eagerly, some 140-250 such programs that take
2-4 s to compile in every new process (measured on the benchmark workloads).
That is only affordable because neither the store nor the size cap is JAX's
own. JAX's capped store locks, lists, stats and reads the access time of every
entry on each write (measured 13 ms per write at 1,000 entries, 34 ms at 3,000,
more than compiling a small program); its uncapped store writes entries in
place, so processes that share a folder read each other's half-written entries
and warn. Here JAX stores through :class:`numpyro_pgm._atomic_cache.AtomicFileCache`
(atomic writes, no locks, no scans), and :func:`prune_compilation_cache` brings
the folder back under :data:`MAX_CACHE_BYTES` once per process, in a background
thread when the cache is turned on, deleting the least recently used entries.
JAX offers no public hook for a store, so this one is installed through JAX's
internals; where they are missing (another JAX version), the cache falls back to
JAX's capped store and to programs that took at least
:data:`FALLBACK_MIN_COMPILE_SECONDS` to compile.

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

import contextlib
import os
import threading
import time
import warnings
from pathlib import Path

__all__ = [
    "DEFAULT_CACHE_DIR",
    "MAX_CACHE_BYTES",
    "MIN_COMPILE_SECONDS",
    "configure_compilation_cache",
    "disable_compilation_cache",
    "enable_compilation_cache",
    "prune_compilation_cache",
]

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "numpyro_pgm" / "jax"
MIN_COMPILE_SECONDS = 0.0
FALLBACK_MIN_COMPILE_SECONDS = 0.1
MAX_CACHE_BYTES = 2**30
PRUNE_TO = 0.8
ENTRY_SUFFIX = "-cache"
TEMPORARY_SUFFIX = ".partial"
STALE_TEMPORARY_SECONDS = 3600.0
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

    Every compiled program is written there and read back by later processes;
    the folder is pruned to :data:`MAX_CACHE_BYTES` in a background thread
    (:func:`prune_compilation_cache`).

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
    # JAX decides once per process, at its first compilation, whether it uses a
    # cache: start that decision afresh so the folder takes effect now.
    compilation_cache.reset_cache()
    if _install_atomic_store(path):
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS
        )
        # Uncapped: should JAX rebuild its own store (after a reset_cache), it
        # must not scan the folder on every write either.
        jax.config.update("jax_compilation_cache_max_size", -1)
        threading.Thread(
            target=_prune_in_background,
            args=(path,),
            name="numpyro_pgm-cache-prune",
            daemon=True,
        ).start()
    else:
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs", FALLBACK_MIN_COMPILE_SECONDS
        )
        jax.config.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    return path


def _install_atomic_store(path: Path) -> bool:
    """Make JAX's compilation cache store through :class:`AtomicFileCache`.

    JAX has no public hook for a store: this sets the module state that its
    first compilation would otherwise fill with its own file store. Returns
    False, changing nothing, where that state is not there (another JAX).
    """
    try:
        from jax._src import compilation_cache as jax_cache

        from ._atomic_cache import AtomicFileCache
    except ImportError:
        return False
    names = ("_cache", "_cache_initialized", "_cache_initialized_mutex")
    if not all(hasattr(jax_cache, name) for name in names):
        return False
    with jax_cache._cache_initialized_mutex:
        jax_cache._cache = AtomicFileCache(path)
        jax_cache._cache_initialized = True
    return True


def prune_compilation_cache(
    directory: str | os.PathLike, max_bytes: int | None = None
) -> int:
    r"""Delete the least recently used entries until the cache fits ``max_bytes``.

    Entries (JAX's ``*-cache`` files) are ordered by their last use,
    :math:`\max(\mathrm{atime}, \mathrm{mtime})`, and the oldest are deleted
    until the rest add up to at most ``PRUNE_TO * max_bytes``, so that the next
    processes do not prune again at once. Where the file system does not record
    reads (``noatime``), last use is the time of writing. Entries that another
    process deletes meanwhile are skipped. Empty entries (which JAX's own
    store leaves when a write is interrupted: JAX cannot read them, and would
    warn and compile the program again in every later process without ever
    replacing them) are deleted whatever the size of the folder, and so are
    temporary files older than :data:`STALE_TEMPORARY_SECONDS` (a process
    killed while :class:`~numpyro_pgm._atomic_cache.AtomicFileCache` wrote).

    Parameters
    ----------
    directory : path
        The cache folder.
    max_bytes : int, optional
        The cap (default :data:`MAX_CACHE_BYTES`): nothing is deleted while the
        entries add up to no more.

    Returns
    -------
    int
        The number of entries deleted.

    Raises
    ------
    ValueError
        If ``directory`` is not a folder, or ``max_bytes`` is not an integer
        >= 0.
    """
    if max_bytes is None:
        max_bytes = MAX_CACHE_BYTES
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(
            f"max_bytes must be an integer >= 0 (a size in bytes); got {max_bytes!r}. "
            f"Pass e.g. 2**30 for 1 GiB, or leave it out for {MAX_CACHE_BYTES}."
        )
    if not os.path.isdir(directory):
        raise ValueError(
            f"directory must be an existing cache folder; got {str(directory)!r}, "
            "which is not a folder. Pass the folder enable_compilation_cache "
            "returned."
        )
    entries, empty = [], []
    stale_before = time.time() - STALE_TEMPORARY_SECONDS
    with os.scandir(directory) as listing:
        for entry in listing:
            is_temporary = entry.name.endswith(TEMPORARY_SUFFIX)
            if not (is_temporary or entry.name.endswith(ENTRY_SUFFIX)):
                continue
            try:
                info = entry.stat()
            except FileNotFoundError:
                continue
            if is_temporary:
                # Left by a process killed mid-write; a live write takes
                # milliseconds.
                if info.st_mtime < stale_before:
                    _remove(entry.path)
                continue
            if info.st_size == 0:
                empty.append(entry.path)
                continue
            last_use = max(info.st_atime, info.st_mtime)
            entries.append((last_use, info.st_size, entry.path))
    for path in empty:
        _remove_entry(path)
    deleted = len(empty)
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return deleted
    for _, size, path in sorted(entries):
        if total <= PRUNE_TO * max_bytes:
            break
        _remove_entry(path)
        total -= size
        deleted += 1
    return deleted


def _remove_entry(path: str) -> None:
    """Delete an entry, and the access-time file an earlier (JAX-capped) cache kept."""
    _remove(path)
    _remove(path.removesuffix(ENTRY_SUFFIX) + "-atime")


def _remove(path: str) -> None:
    """Delete a file another process may have deleted already."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _prune_in_background(path: Path) -> None:
    try:
        prune_compilation_cache(path)
    except (OSError, ValueError) as error:
        warnings.warn(
            f"could not prune the compilation cache in {str(path)!r}: {error}. "
            "It may grow beyond its cap; delete the folder to start afresh.",
            RuntimeWarning,
            stacklevel=1,
        )


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
