"""An exclusive lock on a folder a command writes into (a training's run folder)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.fileio.paths import _show, write_error

LOCK_FILE = ".ipt-ms.lock"


def _flock_holder(info: os.stat_result) -> int | None:
    """The process holding a flock on the file `info` describes, from /proc/locks (Linux), or None."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[4].isdigit():
                    major, minor, inode = fields[5].split(":")
                    if int(inode) == info.st_ino and os.makedev(int(major, 16), int(minor, 16)) == info.st_dev:
                        return int(fields[4])
    except (OSError, ValueError):
        return None
    return None


class FolderLock:
    """An exclusive lock on a folder, held while a command writes into it (a training's run folder).

    `fcntl.flock` on ``FOLDER/.ipt-ms.lock`` (an empty file; the holder's process id is
    read from /proc/locks, so a refused run changes nothing). The kernel drops the lock
    when the process ends in any way (SIGKILL included), so a crashed run never leaves a
    stale lock; a released lock removes its file, one left by a killed run is reused.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run folder"):
        import fcntl

        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as err:
                raise write_error(self.path, err) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _flock_holder(os.fstat(fd))
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise write_error(self.path, err) from None
                who = f"process {holder}" if holder else "another process"
                raise IPTError(f"{what} {_show(self.folder)} is in use by {who} (a training still running there); "
                               "wait for it to end, or choose another folder") from None
            try:  # the file a releasing holder removed meanwhile is no lock: take the current one
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)
        raise IPTError(f"{what} {_show(self.folder)}: could not take its lock {_show(self.path)}")

    def release(self) -> None:
        """Let the next run in (the lock file goes too); also happens when this process ends."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # while still holding it: a waiting opener re-checks the name
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
