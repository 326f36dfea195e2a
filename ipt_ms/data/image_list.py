"""Listing the images of a folder: sorted, hidden files skipped, links followed once."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ipt_ms.errors import IPTError

log = logging.getLogger("ipt_ms.data")

#: File extensions (lower case) treated as images when scanning folders.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def list_images(
    folder: os.PathLike | str,
    recursive: bool = True,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    what: str = "image folder",
) -> list[Path]:
    """Sorted image files under ``folder`` (hidden files and folders skipped).

    Symbolic links are followed, but every folder is entered once (a link back to a
    parent is a loop, not more images) and every file is listed once: under its real
    name when the folder holds it directly, else under the first link in sorted order.
    Raises IPTError naming the folder if it does not exist or holds no images, so a wrong
    ``--data`` path fails at start-up instead of hours into a run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        if folder.exists():
            raise IPTError(f"{what} {folder} is a file, not a folder")
        raise IPTError(f"{what} not found: expected a folder at {folder}")
    exts = {e.lower() for e in extensions}
    candidates: dict[tuple[int, int] | Path, tuple[bool, str, Path]] = {}
    seen_dirs: set[tuple[int, int]] = set()
    real_dirs, linked_dirs = [folder], []  # folders reached through a link are entered last
    while real_dirs or linked_dirs:
        directory = real_dirs.pop() if real_dirs else linked_dirs.pop(0)
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen_dirs:
                continue
            seen_dirs.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as err:
            if directory == folder:
                raise IPTError(f"cannot list {what} {folder}: {err.strerror or err}") from None
            log.warning("%s: skipped, cannot be listed (%s)", directory, err.strerror or err)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(entry)
                continue
            if os.path.splitext(entry.name)[1].lower() not in exts:
                continue
            path = Path(entry.path)
            link = entry.is_symlink()
            try:
                target = entry.stat() if link else None
                identity = (target.st_dev, target.st_ino) if target else (info.st_dev, entry.inode())
            except OSError:  # a broken link stays listed: reading it names it
                identity = path
            rank = (link, path.relative_to(folder).as_posix(), path)
            if identity not in candidates or rank < candidates[identity]:
                candidates[identity] = rank
        if recursive:
            real_dirs.extend(Path(e.path) for e in reversed(subdirs) if not e.is_symlink())
            linked_dirs.extend(Path(e.path) for e in subdirs if e.is_symlink())
    found = [path for _, _, path in candidates.values()]
    if not found:
        raise IPTError(f"{what} {folder} contains no images ({', '.join(sorted(exts))})")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
