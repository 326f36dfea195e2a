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
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import inspect
import json
import logging
import os
import platform
import re
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "IPT_MS_COMPILE_CACHE"
FORMAT = 2  # bump when the layout or the key changes meaning (2: entries record their key)
_OFF = ("0", "off", "false", "no", "none", "disable", "disabled")
_INDEX = re.compile(r"^compile_cache_(\d+)\.mindir$")
_PACKAGE_ROOT = Path(__file__).resolve().parent

_override: tuple[bool, Path | None] | None = None  # (set, path) from set_cache_dir
_lock = threading.RLock()
_session: _Session | None = None
_source_hashes: dict[str, str] = {}
_stats = {"hits": 0, "misses": 0, "stored": 0, "uncached": 0}
_root_verdicts: dict[str, str | None] = {}  # store folder -> why it is not used (None: usable)


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


# ------------------------------------------------------------------------------------ keys
def _file_hash(path: str) -> str:
    cached = _source_hashes.get(path)
    if cached is None:
        try:
            cached = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            cached = "unreadable"
        _source_hashes[path] = cached
    return cached


def code_digest() -> str:
    """Hash of every ipt-ms source file (computed once per process)."""
    key = "<ipt_ms package>"
    if key not in _source_hashes:
        digest = hashlib.sha256()
        for path in sorted(_PACKAGE_ROOT.rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE_ROOT)).encode())
            digest.update(_file_hash(str(path)).encode())
        _source_hashes[key] = digest.hexdigest()
    return _source_hashes[key]


# Cell attributes that MindSpore changes as it runs (not configuration).
_VOLATILE = {"arguments_key", "is_top_cell", "phase", "compile_phase", "current_phase", "cell_init_args",
             "create_time", "total_instance_count", "param_prefix", "parameter_layout_dict",
             "parallel_parameter_name_list", "phase_prefix", "sequence_modified",
             "init_tensor"}  # nn.Embedding's random initial table (construct reads the parameter)
# Private Cell attributes that do change the compiled graph.
_PRIVATE_CONFIG = ("_jit_config_dict", "_amp_level", "_func_graph_flags", "_has_config_recompute", "_recompute_cell",
                   "_dynamic_shape_inputs", "_auto_prefix")


def _describe(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of a configuration value (what Graph mode bakes into a graph)."""
    from mindspore import Parameter, Tensor
    from mindspore.ops import Primitive

    if depth > 6:
        return type(value).__qualname__
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Parameter):
        return ["param", value.name]
    if isinstance(value, Tensor):
        array = value.asnumpy()
        return ["tensor", str(array.dtype), list(array.shape), hashlib.sha256(array.tobytes()).hexdigest()]
    if isinstance(value, (tuple, list)):
        return [type(value).__name__] + [_describe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, Primitive):
        return ["primitive", value.name, _describe(dict(value.attrs), depth + 1)]
    if hasattr(value, "__dataclass_fields__"):
        return [type(value).__qualname__, repr(value)]
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "tobytes"):  # numpy
        return ["array", str(value.dtype), list(value.shape), hashlib.sha256(value.tobytes()).hexdigest()]
    kind = type(value)
    return ["object", f"{kind.__module__}.{kind.__qualname__}", getattr(value, "__qualname__", None)]


def _class_source(cls: type) -> str:
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        path = None
    if not path:
        return "no source"
    path = os.path.realpath(path)
    return _file_hash(path)


def _cell_description(cell) -> list:
    """Every sub-cell's class, source hash, configuration attributes and parameters."""
    from mindspore import nn

    out = []
    for name, sub in cell.cells_and_names():
        cls = type(sub)
        attrs = {}
        for key, value in vars(sub).items():
            if key in _VOLATILE or isinstance(value, nn.Cell):
                continue
            if key.startswith("_") and key not in _PRIVATE_CONFIG:
                continue
            attrs[key] = _describe(value)
        params = [(p.name, list(p.shape), str(p.dtype), bool(p.requires_grad))
                  for p in sub.get_parameters(expand=False)]
        out.append([name, f"{cls.__module__}.{cls.__qualname__}", _class_source(cls), attrs, params])
    return out


def _describe_argument(value: Any) -> Any:
    from mindspore import Tensor

    if isinstance(value, Tensor):
        return ["tensor", list(value.shape), str(value.dtype)]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return ["array", list(value.shape), str(value.dtype)]
    if isinstance(value, (tuple, list)):
        return [type(value).__name__] + [_describe_argument(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe_argument(v) for k, v in sorted(value.items())}
    return _describe(value)


def call_key(cell, args: tuple, kwargs: dict) -> str:
    """What makes one call of `cell` compile a graph of its own: argument shapes/values and the phase."""
    text = json.dumps([_describe_argument(list(args)), _describe_argument(kwargs), bool(cell.training),
                       str(getattr(cell, "phase", ""))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _context_description() -> dict:
    import mindspore as ms

    context = {}
    for key in ("mode", "device_target", "jit_config", "enable_graph_kernel", "graph_kernel_flags",
                "memory_optimize_level", "jit_level", "runtime_num_threads"):
        with contextlib.suppress(ValueError, RuntimeError, TypeError):
            context[key] = _describe(ms.get_context(key))
    context["env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("MS_DEV_", "MS_ENABLE_"))}
    return context


def graph_key(cell, args: tuple, kwargs: dict) -> str:
    """The store key of the graph `cell(*args, **kwargs)` compiles (see the module docstring)."""
    import mindspore as ms

    text = json.dumps({
        "format": FORMAT,
        "mindspore": ms.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "code": code_digest(),
        "context": _context_description(),
        "cell": _cell_description(cell),
        "call": call_key(cell, args, kwargs),
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------ store
class Store:
    """Graphs by key: ``<root>/<key[:2]>/<key>.mindir`` + ``.json`` (size, sha256, what)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.mindir", folder / f"{key}.json"

    def load(self, key: str) -> bytes | None:
        graph, meta = self._paths(key)
        if _unsafe_folder(graph.parent) is not None or not _ours(graph) or not _ours(meta):
            return None  # a sub-folder or file someone else put there: never trusted
        try:
            info = json.loads(meta.read_text())
            data = graph.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or info.get("key") != key:
            return None  # stored under another key (copied, or an older format): a miss, replaced when stored
        if info.get("size") != len(data) or info.get("sha256") != hashlib.sha256(data).hexdigest():
            return None  # a writer is between its two renames, or the entry is damaged: compile instead
        with contextlib.suppress(OSError):
            os.utime(meta)  # last use, for whoever prunes the folder
        return data

    def save(self, key: str, data: bytes, what: str) -> bool:
        from ipt_ms.fileio import atomic_outputs

        graph, meta = self._paths(key)
        info = {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "what": what,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"), "format": FORMAT}
        try:
            graph.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with atomic_outputs([graph, meta], overwrite=True) as (tmp_graph, tmp_meta):
                tmp_graph.write_bytes(data)
                tmp_meta.write_text(json.dumps(info))
        except Exception as err:  # a full disk or a read-only cache must never stop a run
            log.debug("compile cache: could not store %s: %s", key, err)
            return False
        return True


    def drop(self, key: str) -> None:
        """Remove an entry (MindSpore could not load it)."""
        for path in self._paths(key):
            with contextlib.suppress(OSError):
                path.unlink()


def _ours(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.geteuid()
    except OSError:
        return True  # absent: the read that follows fails and it is a miss


def _unsafe_folder(folder: Path) -> str | None:
    """Why graphs in `folder` cannot be trusted (owned by another user, or writable by others), or None."""
    try:
        info = folder.stat()
    except OSError:
        return None  # created by us, private, when the first graph is stored
    if info.st_uid != os.geteuid():
        return f"it is owned by another user (uid {info.st_uid})"
    mode = info.st_mode & 0o7777
    if mode & 0o022 and not mode & 0o1000:
        return f"others can write to it (mode {mode:o})"
    return None


def usable_root(root: Path) -> bool:
    """Whether the store folder `root` may be used; the first refusal of a process says why in one line."""
    name = str(root)
    if name not in _root_verdicts:
        reason = _unsafe_folder(root)
        if reason is None:
            with contextlib.suppress(OSError):
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
                reason = _unsafe_folder(root)
        _root_verdicts[name] = reason
        if reason is not None:
            log.warning("compile cache %s not used: %s, so its graphs could have been put there by someone else; "
                        "compiling without it (choose another folder with --compile-cache)", _printable(name), reason)
    return _root_verdicts[name] is None


def _printable(text: str) -> str:
    from ipt_ms.errors import sanitize

    return sanitize(text)


# ------------------------------------------------------------------------------------ session
def _dependency_hash() -> str | None:
    """The hash MindSpore's cache checks before loading (its `compile_dependency.hash`):
    sha256 over the concatenated sha256 hex digests of the entry script and the modules it
    imports from outside sys.path, in sorted path order. None when there is no entry script
    (``python -c``, stdin), where MindSpore's own bookkeeping would fail."""
    from mindspore.graph import api

    entry = getattr(api, "entry_script_path", None)
    if not entry or not os.path.isfile(entry):
        return None
    try:
        files = api._get_compile_cache_dep_files()
    except Exception:  # unparsable entry script and the like: run uncached
        return None
    joined = "".join(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in sorted(files))
    return hashlib.sha256(joined.encode()).hexdigest()


class _Session:
    """This process's private folder for MindSpore's cache and its compile counter."""

    def __init__(self, folder: Path, dependency_hash: str):
        self.folder = folder
        self.owner = os.getpid()
        self.counter = 0  # MindSpore's index of the next cached compilation in this process
        self.dependency_hash = dependency_hash
        self.seen_hash_files: set[Path] = set()
        self.poisoned = False  # MindSpore no longer loads cached graphs in this process

    def graph_dirs(self) -> list[Path]:
        return sorted(self.folder.glob("rank_*/graph_cache"))

    def graph_dir(self) -> Path:
        rank = 0
        with contextlib.suppress(Exception):
            from mindspore.communication.management import GlobalComm, get_rank

            if GlobalComm.INITED:
                rank = get_rank()
        folder = self.folder / f"rank_{rank}" / "graph_cache"
        folder.mkdir(parents=True, exist_ok=True)
        hash_file = folder / "compile_dependency.hash"
        if folder not in self.seen_hash_files or not hash_file.exists():
            _write_private(hash_file, self.dependency_hash.encode())
            self.seen_hash_files.add(folder)
        return folder

    def files(self) -> dict[int, Path]:
        found = {}
        for folder in self.graph_dirs():
            for path in folder.iterdir():
                match = _INDEX.match(path.name)
                if match:
                    found[int(match.group(1))] = path
        return found

    def cleanup(self) -> None:
        if os.getpid() == self.owner:
            shutil.rmtree(self.folder, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.chmod(0o600)  # MindSpore leaves its files read-only
        path.unlink()
    path.write_bytes(data)


SCRATCH_PREFIX = "ipt-ms-compile-"
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale_scratch(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders of processes that are gone; returns what was removed.

    A process killed outright (SIGKILL, the second Ctrl-C once MindSpore owns SIGINT, the
    out-of-memory killer) cannot run its atexit cleanup, so the next process does it: a
    folder named for a PID that no longer runs, owned by this user and not a link, is
    removed. A folder whose PID runs (the owner, or a reused PID) is left alone.
    """
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH_NAME.match(entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or _pid_alive(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _get_session() -> _Session | None:
    global _session
    if _session is not None and _session.owner == os.getpid():
        return _session
    dependency_hash = _dependency_hash()
    if dependency_hash is None:
        return None
    try:
        sweep_stale_scratch()
        folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < SCRATCH_MIN_FREE:  # MindSpore would write truncated graphs
            shutil.rmtree(folder, ignore_errors=True)
            raise OSError(errno.ENOSPC, f"under {SCRATCH_MIN_FREE >> 20} MiB free")
    except OSError as err:  # TMPDIR full or unwritable: the cache never stops a run
        _scratch_failed(tempfile.gettempdir(), err)
        return None
    _session = _Session(folder, dependency_hash)
    atexit.register(_session.cleanup)
    return _session


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


_SCRATCH_WARNED: list[str] = []
#: free space the per-process scratch folder needs: MindSpore writes each compiled graph there
#: first, and on a full disk leaves a truncated file (and two [ERROR] lines) behind
SCRATCH_MIN_FREE = 64 << 20


def _scratch_failed(folder, err: OSError) -> None:
    """One warning line per process: the scratch folder (under TMPDIR) cannot be written."""
    if not _SCRATCH_WARNED:
        _SCRATCH_WARNED.append(str(folder))
        log.warning("compile cache not used in this run: cannot write its scratch folder in %s (%s); "
                    "compiling instead (set TMPDIR to a folder with free space)", folder, err.strerror or err)


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


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.chmod(0o600)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


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


__all__ = ["ENV_VAR", "CompileCached", "Store", "cache_dir", "cached_call", "call_key", "default_cache_dir",
           "describe", "graph_key", "parse_setting", "set_cache_dir", "stats", "usable_root"]
