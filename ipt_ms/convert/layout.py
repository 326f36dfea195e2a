"""Which key layout a weights file uses, told from its keys, and its arrays under the official keys.

Layouts (the tables live in `ipt_ms.convert.keymap`):

* ``official``: the official PyTorch state_dict (huawei-noah/Pretrained-IPT);
* ``mindspore``: this package's MindSpore network (LayerNorm gamma/beta, embedding tables);
* ``zoo``: the MindSpore model zoo's code (``research/cv/IPT``) and mindediting's cell;
* ``zoo-hub``: the released MindSpore Hub files (zoo layout, LayerNorm without ``.layernorm``).

The zoo is told apart by keys only it writes (``in_proj_layer``, ``tail.T.0.net.J.conv``,
``.layernorm.``); official and ipt-ms files by keys the zoo never writes (``in_proj_weight``,
``tail.T.0.K``, ``sub_mean``, ``position_ids``). A file carrying marks of two layouts is
refused rather than guessed at. Training checkpoints are unwrapped first: the zoo trainer's
(``model.`` prefix, Adam moments and loss-scale entries) and this package's (``train_state``).

An ipt-ms training checkpoint of a run with ``train.ema_decay`` holds two sets of weights:
the raw ones the optimizer steps, and their moving averages (``ema.<name>``, trainable
parameters only; `ipt_ms.train.ema`). Validation and the exported ``model.ckpt`` use the
averages, so reading takes them by default; ``variant="raw"`` takes the raw ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from ipt_ms.convert.keymap import official_key_from_zoo, torch_key
from ipt_ms.errors import IPTError

LAYOUTS = {
    "official": "official PyTorch (huawei-noah/Pretrained-IPT keys)",
    "mindspore": "ipt-ms MindSpore",
    "zoo": "MindSpore model zoo (files from the zoo's code / mindediting)",
    "zoo-hub": "MindSpore model zoo, released Hub file (LayerNorm keys without .layernorm)",
}

_ZOO_MARKS = (re.compile(r"\.in_proj_layer$"), re.compile(r"^tail\.\d+\.0\.net\.\d+\.conv\."),
              re.compile(r"\.layernorm\.(gamma|beta)$"))
_OFFICIAL_MARKS = (re.compile(r"\.in_proj_weight$"), re.compile(r"^tail\.\d+\.0\.\d+\.(weight|bias)$"),
                   re.compile(r"^(sub|add)_mean\."), re.compile(r"position_ids$"))
_MINDSPORE_LEAVES = (re.compile(r"\.norm\d+\.(gamma|beta)$"), re.compile(r"\.embedding_table$"))
_TORCH_LEAVES = (re.compile(r"\.norm\d+\.(weight|bias)$"),
                 re.compile(r"^body\.(query_embed|position_encoding\.pe)\.weight$"))
_ZOO_CODE_NORM = re.compile(r"\.norm\d+\.layernorm\.(gamma|beta)$")
_ZOO_HUB_NORM = re.compile(r"\.norm\d+\.(gamma|beta)$")
_WRAPPER_PREFIXES = ("module.", "model.")


@dataclass(frozen=True)
class TrainingWrapper:
    """How a training checkpoint stores the network beside its optimizer state."""

    name: str
    network_prefix: str  # before every network key
    moment_prefixes: tuple[str, ...]  # before a network key (prefix included): one optimizer moment each
    scalars: tuple[str, ...]  # other optimizer / loss-scale entries
    marker: str | None = None  # a string entry only this kind of file has
    average_prefix: str | None = None  # before a network key: its moving average (EMA), if the run kept one


#: `src/utils.py` of the zoo saves its whole train-one-step cell (Adam, dynamic loss scale).
ZOO_TRAINER = TrainingWrapper(
    "model-zoo trainer checkpoint", "model.", ("moment1.", "moment2."),
    ("beta1_power", "beta2_power", "learning_rate", "global_step", "scale_sense", "loss_scale",
     "current_iterator_step", "last_overflow_iterator_step"))

#: A network trained with MindSpore's own Adam + loss scale (`Model.train`, `ModelCheckpoint`): no prefix.
MINDSPORE_ADAM = TrainingWrapper(
    "MindSpore Adam training checkpoint", "", ("moment1.", "moment2."), ZOO_TRAINER.scalars)

#: `ipt_ms.train.checkpoint` (parameter names from `ipt_ms.train.step`).
IPTMS_TRAINING = TrainingWrapper(
    "ipt-ms training checkpoint", "", ("exp_avg.", "exp_avg_sq."),
    ("state_step", "loss_scale", "loss_scale_good_steps"), marker="train_state", average_prefix="ema.")

#: which of a training checkpoint's weight sets to read: the moving averages or the raw weights
WEIGHT_VARIANTS = ("ema", "raw")


@dataclass
class Unpacked:
    """A file's network arrays under the official keys, and what the file was."""

    arrays: dict[str, np.ndarray]  # official key -> array, in file order
    layout: str  # a key of LAYOUTS
    file_keys: dict[str, str]  # official key -> the key in the file
    strings: dict[str, str] = field(default_factory=dict)  # string entries (metadata)
    training: dict | None = None  # what a training checkpoint records besides the network
    unexpected: list[str] = field(default_factory=list)  # file keys no rule accounts for


def unpack(entries: dict, source: str, variant: str | None = None) -> Unpacked:
    """Detect the layout of `entries` (file key -> array or str) and rename to official keys.

    `variant` ("ema" / "raw", see WEIGHT_VARIANTS) picks a training checkpoint's weight set;
    None takes the moving averages when the file has them, else the raw weights."""
    if variant is not None and variant not in WEIGHT_VARIANTS:
        raise IPTError(f"unknown weights variant {variant!r}; choose one of {', '.join(WEIGHT_VARIANTS)}")
    strings = {k: v for k, v in entries.items() if isinstance(v, str)}
    arrays = {k: v for k, v in entries.items() if not isinstance(v, str)}
    network, training, unexpected = _unwrap_training(arrays, strings, variant, source)
    layout = detect_layout(network, source)
    rename = {"zoo": official_key_from_zoo, "zoo-hub": lambda k: official_key_from_zoo(k, hub=True),
              "mindspore": torch_key}.get(layout, lambda k: k)
    out: dict[str, np.ndarray] = {}
    file_keys: dict[str, str] = {}
    for key, value in network.items():
        official = rename(key)
        if official in out:
            raise IPTError(f"{source}: keys {file_keys[official]!r} and {key!r} both hold {official!r}")
        out[official] = value
        file_keys[official] = key
    return Unpacked(out, layout, file_keys, strings, training, unexpected)


def _unwrap_training(arrays: dict, strings: dict, variant: str | None = None,
                     source: str = "weights file") -> tuple[dict, dict | None, list[str]]:
    """(network arrays, training summary or None, unexplained optimizer-like keys)."""
    wrapper = None
    if IPTMS_TRAINING.marker in strings:
        wrapper = IPTMS_TRAINING
    elif any(k in ZOO_TRAINER.scalars or k.startswith(ZOO_TRAINER.moment_prefixes) for k in arrays):
        prefixed = any(k.startswith(ZOO_TRAINER.network_prefix) for k in arrays)
        wrapper = ZOO_TRAINER if prefixed else MINDSPORE_ADAM
    if wrapper is None:
        if variant is not None:
            raise IPTError(f"{source} is a weights file with one set of weights, not a training checkpoint; "
                           f"--weights-variant {variant} is only for ipt-ms training checkpoints")
        return _strip_common_prefix(arrays), None, []
    moments = {k: v for k, v in arrays.items() if k.startswith(wrapper.moment_prefixes)}
    scalars = {k: v for k, v in arrays.items() if k in wrapper.scalars}
    rest = {k: v for k, v in arrays.items() if k not in moments and k not in scalars}
    averages = {}
    if wrapper.average_prefix:
        cut = len(wrapper.average_prefix)
        averages = {k[cut:]: v for k, v in rest.items() if k.startswith(wrapper.average_prefix) and k[cut:] in rest}
        rest = {k: v for k, v in rest.items() if not (k.startswith(wrapper.average_prefix) and k[cut:] in averages)}
    if variant == "ema" and not averages:
        raise IPTError(f"{source} holds no moving averages of its weights (the run had no train.ema_decay); "
                       "use --weights-variant raw, or leave the option out")
    chosen = "ema" if averages and variant != "raw" else "raw"
    if chosen == "ema":  # untrained parameters (the mean shift) have no average: the network's are used
        rest = {k: averages.get(k, v) for k, v in rest.items()}
    network = {k[len(wrapper.network_prefix):]: v for k, v in rest.items() if k.startswith(wrapper.network_prefix)}
    unexpected = [k for k in rest if not k.startswith(wrapper.network_prefix)]
    for key in moments:
        prefix = next(p for p in wrapper.moment_prefixes if key.startswith(p))
        if key[len(prefix):] not in rest:
            unexpected.append(key)
    summary = {"kind": wrapper.name, "optimizer_entries": len(moments) + len(scalars),
               "averages": len(averages), "variant": chosen}
    if wrapper is IPTMS_TRAINING:
        try:
            state = json.loads(strings[wrapper.marker])
        except ValueError:
            state = {}
        if isinstance(state, dict):
            summary.update({k: state[k] for k in ("global_step", "epoch", "step_in_epoch", "lr") if k in state})
            kind = (state.get("config") or {}).get("kind") if isinstance(state.get("config"), dict) else None
            if kind:
                summary["run"] = kind
    elif "global_step" in scalars and np.asarray(scalars["global_step"]).size == 1:
        summary["global_step"] = int(np.asarray(scalars["global_step"]).reshape(()))
    return network, summary, unexpected


def _strip_common_prefix(arrays: dict) -> dict:
    """Drop a `module.`/`model.` prefix every key carries (DataParallel, wrapper cells)."""
    changed = True
    while changed and arrays:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in arrays):
                arrays = {k[len(prefix):]: v for k, v in arrays.items()}
                changed = True
    return arrays


def _first(keys, patterns) -> str | None:
    return next((k for k in keys if any(p.search(k) for p in patterns)), None)


def detect_layout(keys, source: str) -> str:
    """The layout whose marks `keys` carry; IPTError when they carry marks of two layouts."""
    keys = list(keys)
    zoo, official = _first(keys, _ZOO_MARKS), _first(keys, _OFFICIAL_MARKS)
    if zoo and official:
        raise IPTError(f"{source} mixes key layouts: {zoo!r} is MindSpore model-zoo naming, {official!r} is "
                       "official/ipt-ms naming; refusing to guess which weights are meant")
    if zoo:
        code, hub = _first(keys, (_ZOO_CODE_NORM,)), _first(keys, (_ZOO_HUB_NORM,))
        if code and hub:
            raise IPTError(f"{source} mixes model-zoo LayerNorm names: {code!r} (zoo code) and {hub!r} "
                           "(released Hub files)")
        return "zoo-hub" if hub else "zoo"
    ours, torch = _first(keys, _MINDSPORE_LEAVES), _first(keys, _TORCH_LEAVES)
    if ours and torch:
        raise IPTError(f"{source} mixes key layouts: {ours!r} is MindSpore naming, {torch!r} is PyTorch naming")
    return "mindspore" if ours else "official"
