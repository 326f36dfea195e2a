"""Starting weights for a run (pre-trained, converted PyTorch, or fresh) and exporting them.

Fine-tuning keeps one task (`ipt_ms.convert.single_task.select_task`, re-exported here), so the
fine-tuned file has the layout of the released single-task models (IPT_sr2.pt, ...).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import numpy as np

from ipt_ms.config import ConfigError
from ipt_ms.convert.single_task import select_task
from ipt_ms.spec import IPTSpec
from ipt_ms.train.config import TrainConfig

if TYPE_CHECKING:
    from mindspore import nn

def architecture_diff(a: IPTSpec, b: IPTSpec, ignore: tuple[str, ...] = ()) -> list[str]:
    """"field: A vs B" for every architecture option that differs."""
    return [f"{f.name}: {getattr(a, f.name)!r} vs {getattr(b, f.name)!r}" for f in dataclasses.fields(IPTSpec)
            if f.name not in ignore and getattr(a, f.name) != getattr(b, f.name)]


def initial_weights(cfg: TrainConfig) -> tuple[IPTSpec, dict[str, np.ndarray] | None]:
    """The run's architecture and its starting weights (None: fresh initialisation).

    `train.init` may name any weights file `ipt_ms.convert.weights` reads. For
    fine-tuning, the config's task is cut out of it (`select_task`); for pre-training it
    must match the config's tasks. Any other architecture difference is an error that
    lists the differing options.
    """
    from ipt_ms.convert.weights import log_weights_variant, official_state, read_weight_file, resolve_spec

    spec = cfg.model.spec()
    path = cfg.train.init
    if not path:
        return spec, None
    weights = read_weight_file(path)
    # num_heads and patch_size cannot be read from tensor shapes; the config supplies them
    # for files that do not record their architecture (the official releases)
    overrides = {} if weights.spec is not None else {"num_heads": spec.num_heads, "patch_size": spec.patch_size}
    init_spec = resolve_spec(weights, **overrides)
    state = official_state(weights, init_spec)
    log_weights_variant(weights, hint=f"to start from the raw ones: ipt-ms convert {path} raw.ckpt "
                                      "--weights-variant raw, then --init raw.ckpt")
    if cfg.kind == "finetune":
        task = spec.task_names[0]
        if task not in init_spec.task_names:
            raise ConfigError(f"model.tasks: {path} has no {task!r} head; it has {init_spec.describe_tasks()}")
        init_spec, state = select_task(init_spec, state, task)
    differences = architecture_diff(init_spec, spec, ignore=("num_queries",) if cfg.kind == "finetune" else ())
    if differences:
        raise ConfigError(f"train.init: {path} does not match the config's model section "
                          f"(weights vs config): {'; '.join(differences)}")
    return spec, state


def network_arrays(net: nn.Cell) -> dict[str, np.ndarray]:
    """Every parameter of a MindSpore network as numpy, by MindSpore name: copies.

    `Parameter.asnumpy()` shares memory with the parameter on CPU, so an array kept from
    it would silently follow later training steps; a snapshot must be a copy.
    """
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


def run_provenance(cfg: TrainConfig, step: int, best: dict | None, selected: str | None = None) -> dict:
    """The provenance record (`ipt_ms.provenance`) of a run's weights at `step`: run folder,
    recipe, starting weights and the best validation PSNR-Y so far (task -> {"psnr", ...})."""
    from pathlib import Path

    from ipt_ms.provenance import trained

    init = Path(cfg.train.init).name if cfg.train.init else None
    return trained(Path(cfg.output.dir).resolve().name, step, best, cfg.kind, init, cfg.train.seed, selected)


def export_weights(net: nn.Cell, spec: IPTSpec, path: str | os.PathLike,
                   replace: dict[str, np.ndarray] | None = None, provenance: dict | None = None,
                   overwrite: bool = False) -> None:
    """Write the network's weights (format from the extension) with its architecture and
    `provenance` (`run_provenance`) inside, so `ipt-ms restore --weights` and `load_weights`
    take it directly. `replace` overrides some parameters by MindSpore name (the EMA averages)."""
    from ipt_ms.convert.keymap import mindspore_to_torch
    from ipt_ms.convert.weights import save_weights

    arrays = network_arrays(net)
    arrays.update(replace or {})
    save_weights(path, mindspore_to_torch(arrays, spec), spec, provenance=provenance, overwrite=overwrite)
