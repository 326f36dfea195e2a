"""Per-machine speed levers, picked by a short measured trial (like cuDNN's benchmark mode).

(One idea, kept whole at ~450 lines: the policy, the stored choice and the trial share one
key and one record format, and are read together when a choice looks wrong.)

Which settings run IPT fastest on a CPU depends on the CPU and on the instruction set oneDNN
uses: on an Intel Xeon with AMX, convolutions as im2col + matmul win; on an AVX2 AMD EPYC they
may not, and one tile per Graph-mode call can beat eight. Two levers are compared:

* ``conv_as_matmul``: convolutions as im2col + matmul, or native (`IPT_MS_CONV_AS_MATMUL`);
* ``call_tiles``: tiles per Graph-mode call on CPU, 1 or `CPU_GRAPH_CALL_TILES` (8); a
  caller's smaller ``--batch-size`` still caps it.

A trial builds the network (random weights: the work does not depend on their values) under
each combination, makes one warm-up call, then `REPEATS` timed calls on random tiles, and
picks the lowest median time per tile (a tie keeps the built-in levers). The choice is stored
as a small JSON file in ``levers/`` inside the compile cache folder (`ipt_ms.compile_cache`:
the same place, the same refusal of folders others could write, and the file is written
atomically), under a key of the CPU model, the oneDNN ISA in effect, the MindSpore version,
the device and mode, the architecture's size fields and the task's scale: another CPU, ISA
cap, MindSpore version or model size never uses it.

Policy (``levers=`` of `choose_levers` and the library functions that build or run a network,
``--levers`` on restore/eval/parity-bench, else `IPT_MS_LEVERS`; on CPU only):
  ``stored`` (default)  a stored choice for this key if there is one, else the built-in levers;
  ``trial``             the same, but with no usable stored choice: measure now, store, use;
  ``default``           the built-in levers, whatever is stored.
``ipt-ms tune`` always measures and stores; nothing measures on import or unasked. The CLI
and the library (`ipt_ms.predictors.create_predictor`, `ipt_ms.inference.load_model` /
`restore_image`, `ipt_ms.create_model`, the eval engine) all resolve levers here. A user's
``IPT_MS_CONV_AS_MATMUL=0|1`` wins over a stored choice (and a trial then compares tile counts only).

A stored file is checked before use. A symbolic link, a file of another user, one over
`MAX_BYTES`, not JSON, with unknown or missing fields, a key that is not this one (a file
copied from another machine), or a lever value that is not one of the known values gives
one warning line naming the file, and then the built-in levers (under ``trial``, a new
measurement that replaces the file).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import stat
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec

log = logging.getLogger(__name__)

ENV_VAR = "IPT_MS_LEVERS"
POLICIES = ("stored", "trial", "default")
FORMAT = 1  # bump when the key or the record changes meaning
MAX_BYTES = 16 << 10  # a real record is about 600 bytes
REPEATS = 5  # rounds of timed calls (each setting once per round, after the warm-up); medians count
FOLDER = "levers"  # inside the compile cache folder
#: IPTSpec fields that change the work of one forward call (the task names and count do not)
SIZE_FIELDS = ("n_feats", "n_colors", "patch_size", "patch_dim", "num_heads", "num_layers", "no_norm", "no_mlp",
               "pos_every", "no_pos")
_KEY_FIELDS = {"format", "cpu", "onednn_isa", "mindspore", "device", "mode", "model", "scale"}
_RECORD_FIELDS = {"key", "choice", "seconds_per_tile", "measured"}

#: Graph mode on CPU keeps much of a compiled call's intermediates allocated between calls
#: (measured before inference used mint.permute: ~0.35 GB per 48x48 tile for the full
#: model, 17 GB for one call of 64 tiles, 3.2 GB for 8; now 1.56 GB for 8), and the first
#: call pays for touching all of it (~100 s at 64 tiles, ~15 s at 8, before).
#: Per-tile speed is flat from 2 tiles per call up, so on CPU tiles go through the compiled
#: graph at most this many at a time, whatever `batch_size` asks for (see docs/export.md);
#: `ipt_ms.inference` uses it; a stored choice may replace it.
CPU_GRAPH_CALL_TILES = 8

_policy_override: str | None = None
_stats = {"trials": 0, "stored_used": 0}
_warned: set[str] = set()


class _RefusedError(Exception):
    """Why a stored file is not used (one line)."""


@dataclass(frozen=True)
class Levers:
    """The settings of one MindSpore predictor; None: the built-in behaviour for that lever."""

    conv_as_matmul: bool | None = None
    call_tiles: int | None = None
    origin: str = "built-in"  # built-in | stored | trial

    def describe(self) -> str:
        conv = {None: "built-in convolutions", True: "im2col convolutions", False: "native convolutions"}
        tiles = ("built-in tiles per call" if self.call_tiles is None
                 else f"{self.call_tiles} tile{'s' if self.call_tiles > 1 else ''} per call")
        return f"{conv[self.conv_as_matmul]}, {tiles}"


def stats() -> dict[str, int]:
    """Counts of this process: trials measured, stored choices used."""
    return dict(_stats)


def tile_choices() -> tuple[int, ...]:
    """The tile counts per Graph-mode CPU call a trial compares."""
    return (1, CPU_GRAPH_CALL_TILES)


# ------------------------------------------------------------------------------------ policy
def parse_policy(value: str, where: str = ENV_VAR) -> str:
    text = str(value).strip().lower()
    if text == "":
        return "stored"
    if text not in POLICIES:
        raise IPTError(f"{where}={str(value)[:40]!r}: use stored, trial or default")
    return text


def set_policy(value: str | None) -> None:
    """Use `value` in this process wherever no ``levers=`` is given, above `IPT_MS_LEVERS`; None: back
    to the environment. (The CLI passes ``--levers`` as ``levers=`` instead.)"""
    global _policy_override
    _policy_override = None if value is None else parse_policy(value, "levers")


def policy() -> str:
    if _policy_override is not None:
        return _policy_override
    return parse_policy(os.environ.get(ENV_VAR, ""))


# ------------------------------------------------------------------------------------ key
def _mode() -> str:
    import mindspore as ms

    return "graph" if ms.get_context("mode") == ms.GRAPH_MODE else "pynative"


def _machine_part() -> dict:
    import mindspore as ms

    from ipt_ms import machine

    return {"cpu": machine.describe()["cpu"], "onednn_isa": machine.isa_in_effect(), "mindspore": ms.__version__}


def choice_key(spec: IPTSpec, task: str | int) -> dict:
    """What a stored choice is valid for: this CPU, ISA, MindSpore, device, mode, model size, scale."""
    import mindspore as ms

    return {"format": FORMAT, **_machine_part(), "device": ms.get_context("device_target"), "mode": _mode(),
            "model": {name: getattr(spec, name) for name in SIZE_FIELDS}, "scale": spec.scales[spec.task_index(task)]}


def _file_name(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32] + ".json"


def levers_dir() -> Path | None:
    """Where choices are stored (None: the compile cache is off, so nothing is stored)."""
    from ipt_ms import compile_cache

    root = compile_cache.cache_dir()
    return None if root is None else root / FOLDER


# ------------------------------------------------------------------------------------ reading
def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes (None: absent), refusing links, other users' files, non-files and big files."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _RefusedError("it is a symbolic link") from None
        raise _RefusedError(f"it cannot be read ({err.strerror or err})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _RefusedError("it is not a regular file")
        if info.st_uid != os.geteuid():
            raise _RefusedError(f"it is owned by another user (uid {info.st_uid}), so it could have been planted")
        data = os.read(fd, MAX_BYTES + 1)
    except OSError as err:
        raise _RefusedError(f"it cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise _RefusedError(f"it is over {MAX_BYTES:,} bytes, far more than a stored choice")
    return data


def _check_key(key) -> dict:
    """A key read from a file: exactly the known fields, of plain JSON scalar types."""
    if not isinstance(key, dict) or set(key) != _KEY_FIELDS:
        raise _RefusedError("its key does not have the fields of a stored choice's key")
    model = key["model"]
    if not isinstance(model, dict) or set(model) != set(SIZE_FIELDS):
        raise _RefusedError("its key does not describe a model's size")
    for value in [v for k, v in key.items() if k != "model"] + list(model.values()):
        if not isinstance(value, (str, int, bool)) or (isinstance(value, str) and len(value) > 200):
            raise _RefusedError(f"its key holds {_shown(value)}, not a plain value")
    return key


def _check_record(path: Path, data: bytes, key: dict | None) -> dict:
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _RefusedError("it is not valid JSON") from None
    if not isinstance(record, dict) or set(record) != _RECORD_FIELDS:
        raise _RefusedError("it does not have the fields of a stored choice (key, choice, seconds_per_tile, measured)")
    stored_key = _check_key(record["key"])
    if key is not None and stored_key != key:
        raise _RefusedError("it was stored for another CPU, ISA, MindSpore version or model")
    if path.name != _file_name(stored_key):
        raise _RefusedError("its name does not match the key it holds (copied or renamed)")
    choice = record["choice"]
    if not isinstance(choice, dict) or set(choice) != {"conv_as_matmul", "call_tiles"}:
        raise _RefusedError("its choice does not hold exactly conv_as_matmul and call_tiles")
    conv, tiles = choice["conv_as_matmul"], choice["call_tiles"]
    if conv is not None and not isinstance(conv, bool):
        raise _RefusedError(f"conv_as_matmul is {_shown(conv)}, not true, false or null")
    if tiles is not None and (type(tiles) is not int or tiles not in tile_choices()):
        raise _RefusedError(f"call_tiles is {_shown(tiles)}, not one of {', '.join(map(str, tile_choices()))} or null")
    times = record["seconds_per_tile"]
    if not isinstance(times, dict) or len(times) > 8 or not all(
            isinstance(k, str) and len(k) <= 20 and type(v) in (int, float) and math.isfinite(v) and v >= 0
            for k, v in times.items()):
        raise _RefusedError("its seconds_per_tile is not a short table of times")
    if not isinstance(record["measured"], str) or len(record["measured"]) > 40:
        raise _RefusedError("its measured date is not a short text")
    return record


def _warn_once(path: Path, reason: str, then: str) -> None:
    from ipt_ms.errors import sanitize

    if str(path) not in _warned:
        _warned.add(str(path))
        log.warning("stored levers %s not used: %s; %s", sanitize(str(path)), reason, then)


def _folder_refusal(folder: Path) -> str | None:
    from ipt_ms.compile_cache import _unsafe_folder

    if folder.is_symlink():
        return "it is a symbolic link"
    return _unsafe_folder(folder)


def load_record(path: Path, key: dict | None, then: str) -> dict | None:
    """The checked record at `path` (for `key`, or for any key of the right form when None);
    None when absent or refused (refusals: one warning line per file and process)."""
    reason = _folder_refusal(path.parent)
    if reason is not None:
        _warn_once(path, f"its folder cannot be trusted ({reason})", then)
        return None
    try:
        data = _read_bytes(path)
        return None if data is None else _check_record(path, data, key)
    except _RefusedError as err:
        _warn_once(path, str(err), then)
        return None


def read_choice(key: dict, then: str = "using the built-in levers") -> Levers | None:
    """The stored choice for `key` (None: none stored, the compile cache off, or refused)."""
    from ipt_ms import compile_cache

    folder = levers_dir()
    if folder is None or not compile_cache.usable_root(folder.parent):  # (which says why, once)
        return None
    record = load_record(folder / _file_name(key), key, then)
    if record is None:
        return None
    return Levers(record["choice"]["conv_as_matmul"], record["choice"]["call_tiles"], origin="stored")


# ------------------------------------------------------------------------------------ writing
def store_choice(key: dict, levers: Levers, seconds_per_tile: dict[str, float]) -> Path | None:
    """Write the choice for `key` atomically; None (with one line) when it cannot be stored."""
    from ipt_ms import compile_cache
    from ipt_ms.fileio import atomic_output

    folder = levers_dir()
    if folder is None or not compile_cache.usable_root(folder.parent):
        return None
    record = {"key": key, "choice": {"conv_as_matmul": levers.conv_as_matmul, "call_tiles": levers.call_tiles},
              "seconds_per_tile": {k: round(v, 6) for k, v in seconds_per_tile.items()},
              "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = folder / _file_name(key)
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        reason = _folder_refusal(folder)
        if reason is not None:
            raise IPTError(f"the folder cannot be trusted ({reason})")
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    except (OSError, IPTError) as err:  # a read-only or full cache must never stop a run
        from ipt_ms.errors import sanitize

        log.warning("levers: could not store the choice in %s: %s", sanitize(str(folder)),
                    sanitize(str(err).splitlines()[0] if str(err) else type(err).__name__))
        return None
    return path


# ------------------------------------------------------------------------------------ trial
def _label(conv: bool, tiles: int) -> str:
    return f"{'im2col' if conv else 'native'} x{tiles}"


def measure(spec: IPTSpec, task: str | int, conv_options: tuple[bool, ...], tile_options: tuple[int, ...],
            repeats: int = REPEATS, seed: int = 0) -> dict[tuple[bool, int], float]:
    """Median seconds per tile of a warm forward call, for every (conv_as_matmul, tiles) pair.

    The settings take turns, one call each per round: a KVM guest's speed drifts by a third
    within minutes (BENCHMARKS.md), and timing the settings one after the other once picked
    opposite winners in two trials ten minutes apart."""
    import mindspore as ms
    import numpy as np

    from ipt_ms.models import build_ipt

    task_idx = spec.task_index(task)
    rng = np.random.default_rng(seed)
    _stats["trials"] += 1
    nets = {}
    for conv in conv_options:
        nets[conv] = build_ipt(spec, conv_as_matmul=conv)
        nets[conv].set_train(False)
    inputs = {tiles: ms.Tensor(rng.uniform(0, spec.rgb_range, (tiles, spec.n_colors, spec.patch_size,
                                                                spec.patch_size)).astype(np.float32))
              for tiles in tile_options}
    settings = [(conv, tiles) for conv in conv_options for tiles in tile_options]
    for conv, tiles in settings:
        nets[conv](inputs[tiles], task_idx).asnumpy()  # compiles (or loads the cached graph), warms up
    seconds: dict[tuple[bool, int], list[float]] = {setting: [] for setting in settings}
    for _ in range(max(3, repeats)):
        for conv, tiles in settings:
            start = time.perf_counter()
            nets[conv](inputs[tiles], task_idx).asnumpy()
            seconds[(conv, tiles)].append(time.perf_counter() - start)
    return {(conv, tiles): statistics.median(seconds[(conv, tiles)]) / tiles for conv, tiles in settings}


def run_trial(spec: IPTSpec, task: str | int) -> tuple[Levers, dict[str, float], Path | None, str]:
    """Measure the levers for `spec`/`task` on this machine and store the pick.

    Returns (levers, seconds per tile by setting, where stored or None, one line saying
    what was measured and picked)."""
    from ipt_ms import machine
    from ipt_ms.runtime import conv_as_matmul_default, conv_as_matmul_forced

    key = choice_key(spec, task)
    forced = conv_as_matmul_forced()
    conv_options = (True, False) if forced is None else (forced,)
    graph = key["mode"] == "graph"
    tile_options = tile_choices() if graph else tile_choices()[-1:]  # PyNative: batches as asked
    built_in = (conv_as_matmul_default(), tile_choices()[-1])
    per_tile = measure(spec, task, conv_options, tile_options)
    conv, tiles = min(per_tile, key=lambda k: (per_tile[k], k != built_in))
    levers = Levers(conv if forced is None else None, tiles if graph else None, origin="trial")
    times = {_label(*k): v for k, v in per_tile.items()}
    path = store_choice(key, levers, times)
    shown = ", ".join(f"{name} {seconds:.3g} s" for name, seconds in times.items())
    where = f"stored in {path}" if path is not None else "not stored (the compile cache is off or unusable)"
    line = (f"levers: measured per tile on {machine.heading()}, {key['mode']} mode, scale {key['scale']}: {shown}"
            f" -> picked {dataclasses.replace(levers, conv_as_matmul=conv).describe()}"
            + (" (convolutions as set by IPT_MS_CONV_AS_MATMUL)" if forced is not None else "")
            + f"; {where}")
    return levers, times, path, line


def choose_levers(spec: IPTSpec, task: str | int, setting: str | Levers | None = None) -> Levers:
    """The levers for a MindSpore network of `spec`/`task` (the one place both the CLI and the library ask).

    `setting`: a policy (``stored``, ``trial``, ``default``), None for the process's policy
    (`set_policy`, else `IPT_MS_LEVERS`, else ``stored``), or `Levers` to use as they are.
    Call after `ipt_ms.runtime.configure`. Off the CPU, or with policy ``default``: the
    built-in levers. The user's `IPT_MS_CONV_AS_MATMUL` wins over a stored choice."""
    import mindspore as ms

    from ipt_ms.runtime import conv_as_matmul_forced

    if isinstance(setting, Levers):
        return setting
    chosen = policy() if setting is None else parse_policy(setting, "levers")
    forced = conv_as_matmul_forced()
    if chosen == "default" or ms.get_context("device_target") != "CPU":
        return Levers()
    key = choice_key(spec, task)
    stored = read_choice(key, then="measuring afresh" if chosen == "trial" else "using the built-in levers")
    if stored is not None:
        _stats["stored_used"] += 1
        if forced is not None:
            stored = dataclasses.replace(stored, conv_as_matmul=forced)
        log.info("levers stored for this machine: %s%s", stored.describe(),
                 " (convolutions as set by IPT_MS_CONV_AS_MATMUL)" if forced is not None else "")
        return stored
    if chosen == "trial":
        levers, _, _, line = run_trial(spec, task)
        log.info("%s", line)
        return levers
    return Levers()


def in_effect(chosen: Levers, call_tiles: int) -> Levers:
    """`chosen` with its None fields filled by what the built-in behaviour did: the convolutions a
    network built now gets, and `call_tiles`, the tiles per call the predictor settled on."""
    from ipt_ms.runtime import conv_as_matmul_default

    conv = chosen.conv_as_matmul if chosen.conv_as_matmul is not None else conv_as_matmul_default()
    return Levers(conv, call_tiles, origin=chosen.origin)


# ------------------------------------------------------------------------------------ report
def describe() -> str:
    """One line for `ipt-ms doctor`: the choices stored for this CPU, ISA and MindSpore version."""
    from ipt_ms import machine

    folder = levers_dir()
    if folder is None:
        return "none (they are kept in the compile cache, which is off)"
    try:
        here = _machine_part()
    except Exception as err:  # MindSpore does not import: the doctor reports that elsewhere
        return f"unknown ({type(err).__name__})"
    found = []
    if folder.is_dir():
        for path in sorted(folder.glob("*.json"))[:64]:
            record = load_record(path, None, "not shown")
            if record is None or any(record["key"][k] != v for k, v in here.items()):
                continue
            key, choice = record["key"], record["choice"]
            model = key["model"]
            found.append(f"{model['n_feats']} feats, {model['num_layers']}+{model['num_layers']} layers, "
                         f"{model['patch_size']} px, scale {key['scale']}, {key['device']} {key['mode']}: "
                         f"{Levers(choice['conv_as_matmul'], choice['call_tiles']).describe()} "
                         f"(measured {record['measured']})")
    if not found:
        return f"none for {machine.heading()}; run `ipt-ms tune MODEL` to measure"
    return "; ".join(found)


__all__ = ["CPU_GRAPH_CALL_TILES", "ENV_VAR", "POLICIES", "Levers", "choice_key", "choose_levers", "describe",
           "in_effect", "levers_dir", "load_record", "measure", "parse_policy", "policy", "read_choice", "run_trial",
           "set_policy", "stats", "store_choice"]
