"""Where a weights file came from: one small JSON record written beside the architecture.

Three kinds of record, each a JSON object:

* ``{"kind": "seeded", "seed": 0, "init": "official"}``: random weights from a seed
  (`ipt-ms make-weights`); they restore nothing;
* ``{"kind": "trained", "run": "<run folder>", "step": N, "best_val_psnr": {task: dB} or
  null, "recipe": "pretrain"|"finetune", "init": "<file>" or null, "seed": S}``: a training
  run's checkpoint or exported weights (``"selected": task`` for ``best_<task>.ckpt``);
* ``{"kind": "converted", "from": "<file name>", "source_layout": "...",
  "source_provenance": {...}}``: `ipt-ms convert` output; the source's own record (when
  it had one) is nested, so a chain of conversions reads back to its origin.

`ipt_ms.convert.weights` writes the record (as JSON text) where the architecture goes:
the .ckpt append_dict, the .safetensors metadata, the .pt state_dict's ``_metadata``
entry. Files without one (official releases, model-zoo files) read as "unknown (not
recorded)". The record is a description, read from files anyone can edit: it is
checked for shape, printed quoted, and never trusted for anything but a warning.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from ipt_ms.errors import IPTError, sanitize

PROVENANCE_METADATA_KEY = "ipt_provenance"
KINDS = ("seeded", "trained", "converted")
UNKNOWN = "unknown (not recorded)"
_MAX_CHAIN = 64  # conversions nested in one record; deeper is not a file this package wrote


def seeded(seed: int, init: str = "official") -> dict[str, Any]:
    """Record of weights initialised from `seed` (the official initialisation by default)."""
    return {"kind": "seeded", "seed": int(seed), "init": init}


def trained(run: str, step: int, best: dict | None, recipe: str, init: str | None, seed: int,
            selected: str | None = None) -> dict[str, Any]:
    """Record of a training run's weights at `step`; `best` maps task -> {"psnr": dB, ...} (validation)."""
    record = {"kind": "trained", "run": run, "step": int(step),
              "best_val_psnr": {task: _db(entry.get("psnr")) for task, entry in best.items()} if best else None,
              "recipe": recipe, "init": init, "seed": int(seed)}
    if selected is not None:
        record["selected"] = selected
    return record


def converted(source: str | Path, source_layout: str, source_record: dict | None,
              task: str | None = None) -> dict[str, Any]:
    """Record of `ipt-ms convert` output: the source file's name, layout and own record."""
    record: dict[str, Any] = {"kind": "converted", "from": Path(source).name, "source_layout": source_layout}
    if task is not None:
        record["task"] = task
    if source_record is not None:
        record["source_provenance"] = source_record
    return record


def _db(value) -> float | str | None:
    """A PSNR for JSON: rounded, 'inf' for identical images (JSON has no infinity)."""
    if not isinstance(value, (int, float)):
        return None
    return "inf" if math.isinf(value) else None if math.isnan(value) else round(float(value), 3)


def record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, allow_nan=False)


def parse_record(text: str, source: str) -> dict[str, Any]:
    """The record a file holds (JSON text); IPTError naming `source` when it is not one."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise IPTError(f"{source}: recorded provenance ({PROVENANCE_METADATA_KEY}) is not readable JSON: "
                       f"{reason}") from None
    current, depth = record, 0
    while True:
        if not isinstance(current, dict) or not isinstance(current.get("kind"), str):
            raise IPTError(f"{source}: recorded provenance ({PROVENANCE_METADATA_KEY}) is not a record "
                           "with a 'kind'")
        current = current.get("source_provenance") if current["kind"] == "converted" else None
        if current is None:
            return record
        depth += 1
        if depth > _MAX_CHAIN:
            raise IPTError(f"{source}: recorded provenance ({PROVENANCE_METADATA_KEY}) nests over {_MAX_CHAIN} "
                           "conversions")


def origin(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record at the start of a chain of conversions (None when not recorded)."""
    while record is not None and record.get("kind") == "converted":
        record = record.get("source_provenance")
    return record


def _value(value) -> str:
    """A value from a file, for a terminal: strings quoted (control characters escaped) and cut at
    200 characters, numbers as they are, anything else as JSON."""
    if isinstance(value, str):
        return repr(value[:200]) + ("..." if len(value) > 200 else "")
    if isinstance(value, (int, float)):
        return str(value)
    text = json.dumps(value, sort_keys=True)  # ASCII: control characters escaped
    return text[:200] + ("..." if len(text) > 200 else "")


def _word(value) -> str:
    """A short name from a file (layout, task, recipe): bare when it is one plain word, else quoted."""
    return value if isinstance(value, str) and re.fullmatch(r"[\w.+-]{1,64}", value, re.ASCII) else _value(value)


def _one(record: dict[str, Any]) -> str:
    kind = record.get("kind")
    if kind == "seeded":
        init = record.get("init")
        how = ", official initialisation" if init == "official" else f", {_value(init)} initialisation" if init else ""
        return f"seeded random weights (seed {_value(record.get('seed'))}{how}): not trained"
    if kind == "trained":
        text = f"trained: run {_value(record.get('run'))}"
        if record.get("recipe"):
            text += f" ({_word(record.get('recipe'))})"
        text += f", step {_value(record.get('step'))}"
        if record.get("selected"):
            text += f", best {_word(record.get('selected'))} weights"
        best = record.get("best_val_psnr")
        if isinstance(best, dict) and best:
            scores = ", ".join(f"{_word(t)} {f'{v:.2f}' if isinstance(v, float) else _word(v)} dB"
                               for t, v in best.items())
            text += f"; best validation PSNR-Y: {scores}"
        else:
            text += "; no validation score"
        init = record.get("init")
        seed = _value(record.get("seed"))
        text += f"; started from {_value(init)}" if init else f"; fresh initialisation (seed {seed})"
        return text
    if kind == "converted":
        text = f"converted from {_value(record.get('from'))} ({_word(record.get('source_layout'))} layout)"
        return text + (f", task {_word(record['task'])}" if record.get("task") else "")
    return f"{_value(kind)}: {_value(record)}"


def describe(record: dict[str, Any] | None) -> str:
    """One line: the record, then each conversion's source back to the origin (' <- ')."""
    parts = []
    while record is not None:
        parts.append(_one(record))
        if record.get("kind") != "converted":
            break
        record = record.get("source_provenance")
        if record is None:
            parts.append(UNKNOWN)
    return " <- ".join(parts) if parts else UNKNOWN


def seeded_warning(path: str | Path, record: dict[str, Any] | None) -> str | None:
    """The one-line warning for weights whose origin is a seed (None for any other weights)."""
    start = origin(record)
    if start is None or start.get("kind") != "seeded":
        return None
    return (f"warning: {path} holds seeded random weights (make-weights --seed {_value(start.get('seed'))}): "
            "the output is not a restoration")


def warn_if_seeded(path: str | Path, record: dict[str, Any] | None) -> None:
    """Print `seeded_warning` on stderr, once per call (callers call it once per loaded file).

    Printed rather than logged: `-q` silences warnings, and this one says what the output is."""
    line = seeded_warning(path, record)
    if line:
        print(sanitize(line), file=sys.stderr, flush=True)  # the path may hold ESC or a newline
