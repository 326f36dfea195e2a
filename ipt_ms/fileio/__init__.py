"""File helpers shared by every command: output-path checks (`paths`), atomic writes (`atomic`), folder locks
(`lock`). Import them from here.

The rules every writer in ipt-ms follows (docs/guarantees.md):

* an output path is checked before any work (`check_output_file`, `check_output_dir`):
  a directory where a file is expected, a file where a folder is expected, or a folder
  that cannot be written is refused with one line naming the path;
* a file is written to a temporary name next to it and moved into place only when the
  writer succeeded (`atomic_output`, `atomic_outputs` for files that belong together),
  so an existing file is never half-overwritten;
* outputs are created exclusively: the final move never replaces an existing file
  (rename with RENAME_NOREPLACE, else a hard link, both atomic), so two commands racing
  for one name cannot both win; only a caller passing ``overwrite=True`` (the user's
  --overwrite, or a run's own state files) replaces a file;
* no output ever replaces one of the command's own inputs, even with ``overwrite``: the
  readers record what they read (`note_input`) and the writer compares identities
  (device and inode, so symlinks and hard links count as the same file);
* on any failure the temporary file is removed, together with whatever the writer put
  next to it under the same unique name (MindSpore's checkpoint writer keeps its own
  ``.tmp`` file); a full disk (ENOSPC, EDQUOT), a read-only file system or a missing
  permission becomes one line naming the file (`IPTError`, exit code 2);
* new files get the permissions the umask allows (``0o666 & ~umask``), as `open()`
  gives, whatever mode the writer chose (`tempfile.mkstemp` uses 0600, MindSpore's
  checkpoint writer 0400), so teammates on shared storage can read results;
* temporary names are ``.<name>.partial-<pid>-<random><suffix>``: a process killed
  with SIGKILL cannot clean up, and `remove_stale_partials` deletes the ones whose
  process is gone and that are older than this process; every writer runs it once per
  folder it writes into.
"""

from __future__ import annotations

from ipt_ms.fileio.atomic import (
    PARTIAL_MARKER,
    atomic_output,
    atomic_outputs,
    move_exclusive,
    overwriting,
    remove_stale_partials,
    save_figure,
    staged_folder,
)
from ipt_ms.fileio.lock import LOCK_FILE, FolderLock
from ipt_ms.fileio.paths import (
    OVERWRITE_HINT,
    check_name_part,
    check_new_output,
    check_output_dir,
    check_output_file,
    disk_full,
    ensure_writable_dir,
    input_at,
    note_input,
    output_dir,
    write_error,
)

__all__ = [
    "LOCK_FILE",
    "OVERWRITE_HINT",
    "PARTIAL_MARKER",
    "FolderLock",
    "atomic_output",
    "atomic_outputs",
    "check_name_part",
    "check_new_output",
    "check_output_dir",
    "check_output_file",
    "disk_full",
    "ensure_writable_dir",
    "input_at",
    "move_exclusive",
    "note_input",
    "output_dir",
    "overwriting",
    "remove_stale_partials",
    "save_figure",
    "staged_folder",
    "write_error",
]
