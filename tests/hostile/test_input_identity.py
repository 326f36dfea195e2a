"""Inputs are protected by file identity (device, inode), which a deleted file gives back:
a training that resumes from a checkpoint and later rotates it away must still be able to
write a new file that the kernel puts on the freed inode (found at the end of
`make train-small`: best_sr_x3.ckpt was refused as "one of this command's inputs").
A hard link to an input, the case the identity exists for, stays refused."""

from __future__ import annotations

import os

import pytest

from ipt_ms import fileio
from ipt_ms.errors import IPTError
from ipt_ms.fileio import paths


@pytest.fixture(autouse=True)
def _no_inputs_recorded(monkeypatch):
    monkeypatch.setattr(paths, "_INPUTS", {})


def test_deleted_input_does_not_protect_the_file_on_its_inode(tmp_path):
    old = tmp_path / "checkpoints" / "step_2709.ckpt"
    old.parent.mkdir()
    old.write_bytes(b"resumed from")
    fileio.note_input(old)
    old.unlink()  # rotated away by the run
    new = tmp_path / "best_sr_x3.ckpt"
    new.write_bytes(b"best so far")
    info = os.stat(new)
    paths._INPUTS[(info.st_dev, info.st_ino)] = str(old)  # the kernel reused the inode number
    assert fileio.input_at(new) is None
    with fileio.atomic_output(new, overwrite=True) as tmp:
        tmp.write_bytes(b"better")
    assert new.read_bytes() == b"better"


def test_hard_link_to_a_live_input_is_still_refused(tmp_path):
    src = tmp_path / "photo.png"
    src.write_bytes(b"input")
    fileio.note_input(src)
    link = tmp_path / "out.png"
    os.link(src, link)
    assert fileio.input_at(link) == str(src)
    refused = pytest.raises(IPTError, match="one of this command's inputs")
    with refused, fileio.atomic_output(link, overwrite=True) as tmp:
        tmp.write_bytes(b"x")
    assert src.read_bytes() == b"input"
