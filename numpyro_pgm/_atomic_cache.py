"""The file store behind ``numpyro_pgm``'s compilation cache: atomic writes, no scans.

JAX's own file store (``jax._src.lru_cache.LRUCache``) writes an entry in place.
Uncapped, it takes no lock, so a process that reads an entry another process is
still writing gets a truncated stream: JAX warns ("Error reading persistent
compilation cache entry ...") and compiles again (measured: one of three
processes started together on an empty cache). An interrupted write leaves a
truncated entry that JAX never replaces. Capped, it locks a file around every
read and write and scans the whole folder on every write (see
:mod:`numpyro_pgm._compilation_cache`).

:class:`AtomicFileCache` writes each entry to a temporary file in the same folder
and renames it into place (``os.replace`` is atomic on a POSIX file system), so
a reader sees a whole entry or none, with neither locks nor scans. The size cap
is :func:`numpyro_pgm._compilation_cache.prune_compilation_cache`'s. Entries keep
JAX's file names (``<key>-cache``), so a folder filled by either store serves
the other.

Imported only once JAX is running (it subclasses JAX's cache interface).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from jax._src.compilation_cache_interface import CacheInterface

from ._compilation_cache import ENTRY_SUFFIX, TEMPORARY_SUFFIX

__all__ = ["AtomicFileCache"]


class AtomicFileCache(CacheInterface):
    """A folder of compiled programs, one file per key, written atomically.

    Parameters
    ----------
    path : pathlib.Path
        An existing folder.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    def _entry(self, key: str) -> Path:
        if not key:
            raise ValueError("key cannot be empty")
        return self._path / f"{key}{ENTRY_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes for ``key``, or None if there are none."""
        try:
            return self._entry(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` unless an entry exists already.

        The bytes go to a temporary file first, renamed over the entry's name
        once complete; an interrupted write removes its temporary file.
        """
        entry = self._entry(key)
        if entry.exists():
            return
        descriptor, temporary = tempfile.mkstemp(
            dir=self._path, prefix=f".{key[:32]}-", suffix=TEMPORARY_SUFFIX
        )
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(value)
            os.replace(temporary, entry)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
            raise
