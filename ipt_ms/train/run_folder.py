"""The run folder (output.dir): what a run may write there, checked before any work starts.

A run folder never lies inside the training data, holds one run at a time (`FolderLock`), and
its export may replace only that run's own earlier export.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ipt_ms.config import ConfigError
from ipt_ms.errors import IPTError
from ipt_ms.train.config import TrainConfig

log = logging.getLogger("ipt_ms.train")


def refuse_run_dir_in_data(run_dir: Path, cfg: TrainConfig) -> None:
    """-o equal to or inside --data would make the run's own files (plots, best crops) training data."""
    root = cfg.data.root
    if not root or not os.path.isdir(root):
        return
    run, data = Path(os.path.realpath(run_dir)), Path(os.path.realpath(root))
    if run == data or data in run.parents:
        raise IPTError(f"output.dir {str(run_dir)!r} is inside the training data {str(root)!r}: the run's own "
                       "images would become training data; choose an output.dir outside it")


def claim_run_folder(run_dir: Path, checkpoint_dir: Path):
    """Make the folders, lock the run folder for this process and clear partial files a killed run left.

    Returns the `ipt_ms.fileio.FolderLock` (release it when the run ends)."""
    from ipt_ms.fileio import FolderLock, ensure_writable_dir, remove_stale_partials

    ensure_writable_dir(checkpoint_dir, "output.dir")  # unwritable or file-typed: fails before anything is built
    lock = FolderLock(run_dir, "run folder (output.dir)")  # one training per run folder
    for stale in remove_stale_partials(run_dir) + remove_stale_partials(checkpoint_dir):
        log.info("removed %s, left by a run killed while writing", stale)
    return lock


def check_export_target(run_dir: Path, cfg: TrainConfig, resumed: bool, is_main: bool) -> None:
    """Before any work: the export may replace only this run's own earlier export, never
    the init weights (`output.export` itself is checked by the config) or a file that a
    new run finds in its folder."""
    path = run_dir / cfg.output.export
    if not os.path.lexists(path):
        return
    init = cfg.train.init
    if init and os.path.exists(init) and os.path.samefile(init, path):
        raise ConfigError(f"output.export: {str(path)!r} is the init weights (train.init); choose another name")
    if not resumed and is_main:
        raise IPTError(f"output.export {str(path)!r} already exists and this is a new run, which would replace "
                       "it; remove it or choose another output.dir")


def write_run_config(run_dir: Path, cfg: TrainConfig) -> None:
    """config.yaml: the full config of the run as it runs now (a resume rewrites it)."""
    import yaml

    from ipt_ms.config import to_dict
    from ipt_ms.fileio import atomic_output

    with atomic_output(run_dir / "config.yaml", overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
