"""Persistent Graph-mode compile cache: compile a network once per machine, not once per process.

MindSpore's own cache (`enable_compile_cache`) cannot be switched on as it is: it saves the
n-th graph a process compiles as ``compile_cache_<n>.mindir`` and hands that file to the
n-th compilation of the next process, whatever graph that is (the index is a per-process
counter, the folder is fixed at the first compilation). Two tasks of one model have the
same shapes, so a derain run that came after a denoise_30 run silently returned
denoise_30's output; sr_x2 followed by denoise_30 crashed. Its staleness check only hashes
the entry script and the files it imports from outside ``sys.path``, so an installed
ipt-ms could change under it unseen.

Here MindSpore's cache only ever sees a private, empty folder per process (a session).
Just before ipt-ms calls a network whose graph is not compiled yet in this process, the
graph it is about to compile is identified by a key (`graph_key`) and, if the store holds
that graph, a copy is put where MindSpore will look for its next compilation; a graph
MindSpore compiles and saves is moved into the store under its key. The key covers:

* the MindSpore and Python versions, the device, the mode and MindSpore's compile options;
* the code: every source file of ipt-ms and of the module defining each cell class;
* the network: every sub-cell's class, its configuration attributes (numbers, flags,
  tuples, tensors' values, primitives' attributes), every parameter's name, shape, dtype
  and trainability, and whether it is training;
* the call: the shapes and dtypes of the tensors and the values of every other argument
  (the task index, flags), i.e. everything Graph mode compiles as a constant.

Store entries are written to temporary names and renamed into place, with a checksum
checked before use, so concurrent processes never see half a graph; a process that finds
nothing usable just compiles. A cache never changes an answer: each entry records the key
it was stored under, and an entry whose recorded key is not the one asked for (a graph
copied under another name) is a miss; a stored graph that MindSpore fails to load is
dropped and the call compiled afresh; and a store folder that another user owns, or that
others may write (group/other-writable, unless sticky and ours), is not used at all, with
one line saying why: its entries could have been planted. The cache is switched on in MindSpore only for the duration
of such a call, so graphs compiled elsewhere (PyNative `ms.jit`, export) never touch it.

Where: ``$IPT_MS_COMPILE_CACHE`` if set (a folder, or ``0``/``off`` to disable), else
``$XDG_CACHE_HOME/ipt-ms/compile`` (``~/.cache/ipt-ms/compile``); `set_cache_dir` and the
``--compile-cache`` option / ``train.compile_cache`` key override both. Deleting the folder
is always safe. Only Graph mode is cached.

Here: where the store is and the cached call; the key is in `keys`, the store in `store`, the
per-process scratch folder in `scratch`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

from ipt_ms.compile_cache.keys import FORMAT, call_key, code_digest, graph_key
from ipt_ms.compile_cache.scratch import (
    SCRATCH_MIN_FREE,
    SCRATCH_PREFIX,
    _get_session,
    _scratch_failed,
    _Session,
    _unlink,
    _write_private,
    sweep_stale_scratch,
)
from ipt_ms.compile_cache.store import Store, _printable, usable_root
from ipt_ms.compile_cache.store import _unsafe_folder as _unsafe_folder  # ipt_ms.levers checks its folder with it

log = logging.getLogger(__name__)
ENV_VAR = "IPT_MS_COMPILE_CACHE"
_OFF = ("0", "off", "false", "no", "none", "disable", "disabled")
_override: tuple[bool, Path | None] | None = None  # (set, path) from set_cache_dir
_lock = threading.RLock()
_stats = {"hits": 0, "misses": 0, "stored": 0, "uncached": 0}


# ------------------------------------------------------------------------------------ where
def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ipt-ms" / "compile"


def parse_setting(value: str | os.PathLike | None) -> Path | None:
    """A user's setting -> the cache folder, or None for off ("0", "off", ...); "" / "auto" -> default."""
    if value is None:
        return default_cache_dir()
    text = str(value).strip()
    if text.lower() in _OFF:
        return None
    if text.lower() in ("", "1", "on", "auto", "default", "true", "yes"):
        return default_cache_dir()
    return Path(os.path.expanduser(text))


def set_cache_dir(value: str | os.PathLike | None) -> None:
    """Use `value` (a folder, "off", or "auto" for the default) in this process, above the environment."""
    global _override
    with _lock:
        _override = (True, parse_setting(value))


def cache_dir() -> Path | None:
    """The store folder in effect (None: caching is off)."""
    if _override is not None:
        return _override[1]
    return parse_setting(os.environ.get(ENV_VAR))


def stats() -> dict[str, int]:
    """Counts of this process: graphs loaded from the store, compiled and stored, compiled uncached."""
    return dict(_stats)


def _set_mindspore_cache(session: _Session | None) -> None:
    import mindspore as ms

    if session is None:
        ms.set_context(enable_compile_cache=False)
    else:
        ms.set_context(enable_compile_cache=True, compile_cache_path=str(session.folder))


def _graph_mode() -> bool:
    import mindspore as ms

    return ms.get_context("mode") == ms.GRAPH_MODE


def cached_call(cell, call, args: tuple, kwargs: dict):
    """`call(*args, **kwargs)` (the cell's own __call__), with its graph from/into the store.

    Outside Graph mode, with the cache off, or for a call whose graph this process has
    already compiled, this is just the call.
    """
    if not _graph_mode():
        return call(*args, **kwargs)
    compiled_keys = cell.__dict__.setdefault("_ipt_compiled_calls", set())
    key = call_key(cell, args, kwargs)
    root = cache_dir()
    if key in compiled_keys:
        return call(*args, **kwargs)
    from ipt_ms.signals import compiling

    with _lock, compiling():  # Ctrl-C waits for the compiler: one line, not MindSpore's stack
        if root is not None and not usable_root(root):
            root = None
        session = _get_session() if root is not None else None
        if session is None:
            return _call_uncached(cell, call, args, kwargs, key)
        return _call_with_store(cell, call, args, kwargs, key, Store(root), session)


def _call_with_store(cell, call, args, kwargs, key, store: Store, session: _Session):
    graph_id = graph_key(cell, args, kwargs)
    try:
        folder = session.graph_dir()
    except OSError as err:
        _scratch_failed(session.folder, err)
        return _call_uncached(cell, call, args, kwargs, key)
    stray = session.files()
    if stray:  # left by a compilation this module did not see: MindSpore's counter is past them
        session.counter = max(session.counter, max(stray) + 1)
        for path in stray.values():
            _unlink(path)
    index = session.counter
    data = store.load(graph_id)
    if data is not None and session.poisoned:
        # MindSpore stopped loading in this process (see below); the store has this graph already
        return _call_uncached(cell, call, args, kwargs, key)
    if data is not None:
        try:
            _write_private(folder / f"compile_cache_{index}.mindir", data)
        except OSError as err:  # a full TMPDIR: compile instead (the cache never stops a run)
            _unlink(folder / f"compile_cache_{index}.mindir")
            _scratch_failed(session.folder, err)
            return _call_uncached(cell, call, args, kwargs, key)
    before = len(cell.compile_cache)
    before_phases = set(cell.compile_cache)
    _set_mindspore_cache(session)
    try:
        return call(*args, **kwargs)
    except Exception as err:
        if data is None:
            raise
        # a stored graph MindSpore cannot use: never an answer, and not again next time
        store.drop(graph_id)
        _stats["dropped"] = _stats.get("dropped", 0) + 1
        log.warning("compile cache: a stored graph could not be loaded (%s); removed it and compiling afresh",
                    _printable(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__))
        data = None
        _unlink(folder / f"compile_cache_{index}.mindir")
        session.poisoned = True
        _set_mindspore_cache(None)
        _forget_compiled(cell, before_phases)
        return _call_uncached(cell, call, args, kwargs, key)
    finally:
        _set_mindspore_cache(None)
        compiled = len(cell.compile_cache) > before
        written = session.files()
        if compiled:
            cell.__dict__["_ipt_compiled_calls"].add(key)
            if data is not None:
                _stats["hits"] += 1
            else:
                # MindSpore found no file at its index: it compiles and saves this graph, and from
                # now on does not load any cached graph in this process (its own consistency rule)
                session.poisoned = True
                _stats["misses"] += 1
                new = written.get(index)
                if new is not None and set(written) == {index}:
                    try:
                        if store.save(graph_id, new.read_bytes(), what=f"{type(cell).__qualname__} {key[:12]}"):
                            _stats["stored"] += 1
                    except OSError as err:
                        log.debug("compile cache: could not read %s: %s", new, err)
            session.counter = max([index + 1] + [i + 1 for i in written])
        for path in written.values():
            _unlink(path)


def _forget_compiled(cell, keep: set) -> None:
    """Make MindSpore compile again the phases `cell` compiled since `keep` (a graph it loaded
    from the store and cannot run)."""
    from mindspore.graph.api import _cell_graph_executor

    new = set(cell.compile_cache) - set(keep)
    if new:
        with contextlib.suppress(Exception):
            _cell_graph_executor.del_net_res(cell, new)
        cell.compile_cache.difference_update(new)


def _call_uncached(cell, call, args, kwargs, key):
    before = len(cell.compile_cache)
    out = call(*args, **kwargs)
    if len(cell.compile_cache) > before:
        cell.__dict__["_ipt_compiled_calls"].add(key)
        _stats["uncached"] += 1
    return out


class CompileCached:
    """Mixin for top-level cells (the network, the training step): their Graph-mode
    compilations go through the persistent cache (`cached_call`)."""

    def __call__(self, *args, **kwargs):
        return cached_call(self, super().__call__, args, kwargs)


def describe() -> str:
    """One line for `ipt-ms doctor` and logs: where the cache is and how big."""
    root = cache_dir()
    if root is None:
        return f"off ({ENV_VAR}={os.environ.get(ENV_VAR, '')!r})" if _override is None else "off"
    size = count = 0
    if root.is_dir():
        for path in root.rglob("*.mindir"):
            with contextlib.suppress(OSError):
                size += path.stat().st_size
                count += 1
    return f"{root} ({count} graphs, {size / 2**20:.1f} MiB)"


__all__ = ["ENV_VAR", "FORMAT", "SCRATCH_MIN_FREE", "SCRATCH_PREFIX", "CompileCached", "Store", "cache_dir",
           "cached_call", "call_key", "code_digest", "default_cache_dir", "describe", "graph_key", "parse_setting",
           "set_cache_dir", "stats", "sweep_stale_scratch", "usable_root"]
