"""The graph store (`Store`: checksummed entries, atomic writes) and whether a store folder may be
trusted at all (`usable_root`: ours, and writable by no one else). See `ipt_ms.compile_cache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ipt_ms.compile_cache.keys import FORMAT

log = logging.getLogger("ipt_ms.compile_cache")  # one logger for the whole cache

_root_verdicts: dict[str, str | None] = {}  # store folder -> why it is not used (None: usable)


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
