"""Declarative key maps: the official PyTorch state_dict and the other layouts IPT weights come in.

Every table here is read in both directions; keys not covered by a row keep their name.

* `KEY_MAP`: this package's MindSpore network. Both networks use the same module tree,
  so only a few leaves differ. `position_ids` is a PyTorch buffer that MindSpore does
  not store; it is rebuilt from the spec (it is always ``arange(num_patches)``).
* `ZOO_KEY_MAP` / `ZOO_HUB_KEY_MAP`: the official MindSpore model zoo (mindspore-ai/models
  `research/cv/IPT`, also loaded by mindediting): files written by the zoo's code, and
  the released MindSpore Hub files, whose LayerNorm keys lack the ``.layernorm`` level.
  Arrays copy unchanged (no transpose; the zoo's pixel shuffle has torch's channel
  order). The zoo network has no mean-shift cells (`mean_shift_arrays` rebuilds them)
  and orders a 6-task model's heads ``ZOO_PRETRAIN_TASKS``. See README "Convert".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ipt_ms.errors import WeightsMismatchError
from ipt_ms.spec import IPTSpec


@dataclass(frozen=True)
class LeafRename:
    """Parameters of modules whose path matches `module` rename their leaf."""

    module: str  # regex, full match on the module path (key without its leaf)
    torch_leaf: str
    mindspore_leaf: str
    why: str


KEY_MAP: tuple[LeafRename, ...] = (
    LeafRename(r"body\.(encoder|decoder)\.layers\.\d+\.norm[123]", "weight", "gamma", "nn.LayerNorm scale"),
    LeafRename(r"body\.(encoder|decoder)\.layers\.\d+\.norm[123]", "bias", "beta", "nn.LayerNorm shift"),
    LeafRename(r"body\.query_embed", "weight", "embedding_table", "nn.Embedding table"),
    LeafRename(r"body\.position_encoding\.pe", "weight", "embedding_table", "nn.Embedding table"),
)

#: PyTorch-only buffers: dropped going to MindSpore, rebuilt going back.
TORCH_ONLY_BUFFERS = ("body.position_encoding.position_ids",)


def _rename(key: str, to_mindspore: bool) -> str:
    module, _, leaf = key.rpartition(".")
    for row in KEY_MAP:
        src, dst = (row.torch_leaf, row.mindspore_leaf) if to_mindspore else (row.mindspore_leaf, row.torch_leaf)
        if leaf == src and re.fullmatch(row.module, module):
            return f"{module}.{dst}"
    return key


def mindspore_key(torch_key: str) -> str | None:
    """MindSpore parameter name for an official PyTorch key (None for torch-only buffers)."""
    return None if torch_key in TORCH_ONLY_BUFFERS else _rename(torch_key, to_mindspore=True)


def torch_key(mindspore_key: str) -> str:
    """Official PyTorch key for a MindSpore parameter name."""
    return _rename(mindspore_key, to_mindspore=False)


def mindspore_shapes(spec: IPTSpec) -> dict[str, tuple[int, ...]]:
    """Every MindSpore parameter name and shape for `spec` (official order)."""
    return {mindspore_key(k): s for k, s in spec.torch_state_shapes().items() if k not in TORCH_ONLY_BUFFERS}


def check_shapes(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]],
                 tolerate_missing: tuple[str, ...] = (), context: str = "weights") -> None:
    """Raise WeightsMismatchError listing missing, unexpected and mis-shaped keys."""
    missing = [k for k in expected if k not in found and k not in tolerate_missing]
    unexpected = [k for k in found if k not in expected]
    mismatched = [(k, expected[k], tuple(found[k])) for k in expected
                  if k in found and tuple(found[k]) != tuple(expected[k])]
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(missing, unexpected, mismatched, context=context)


def torch_to_mindspore(state: dict[str, np.ndarray], spec: IPTSpec) -> dict[str, np.ndarray]:
    """Official-keyed arrays -> MindSpore-named arrays, after checking every key and shape."""
    check_shapes({k: v.shape for k, v in state.items()}, spec.torch_state_shapes(),
                 tolerate_missing=TORCH_ONLY_BUFFERS, context="PyTorch weights")
    return {mindspore_key(k): state[k] for k in spec.torch_state_shapes() if k not in TORCH_ONLY_BUFFERS}


def mindspore_to_torch(params: dict[str, np.ndarray], spec: IPTSpec) -> dict[str, np.ndarray]:
    """MindSpore-named arrays -> official-keyed arrays in the official order."""
    check_shapes({k: v.shape for k, v in params.items()}, mindspore_shapes(spec), context="MindSpore weights")
    out = {}
    for key, shape in spec.torch_state_shapes().items():
        if key in TORCH_ONLY_BUFFERS:
            out[key] = np.arange(shape[-1], dtype=np.int64).reshape(shape)
        else:
            out[key] = params[mindspore_key(key)]
    return out


# ------------------------------------------------------------------------------- model zoo
_INDEX = r"\d+"
_PLACEHOLDER = re.compile(r"\{(\w+)(?:\*(\d+)|:([\w|]+))?\}")


@dataclass(frozen=True)
class KeyTemplate:
    """A key pattern: ``{n}`` is an index, ``{n*2}`` twice the index, ``{x:a|b}`` one of the words."""

    text: str
    regex: re.Pattern = field(init=False, repr=False, compare=False)
    fields: tuple = field(init=False, repr=False, compare=False)  # (name, multiplier or None, is_word)

    def __post_init__(self) -> None:
        parts, fields, pos = [], [], 0
        for m in _PLACEHOLDER.finditer(self.text):
            parts.append(re.escape(self.text[pos:m.start()]))
            name, mult, words = m.group(1), m.group(2), m.group(3)
            parts.append(f"(?P<{name}>{words or _INDEX})")
            fields.append((name, int(mult) if mult else 1, bool(words)))
            pos = m.end()
        parts.append(re.escape(self.text[pos:]))
        object.__setattr__(self, "regex", re.compile("".join(parts)))
        object.__setattr__(self, "fields", tuple(fields))

    def match(self, key: str) -> dict | None:
        m = self.regex.fullmatch(key)
        if not m:
            return None
        values = {}
        for name, mult, is_word in self.fields:
            if is_word:
                values[name] = m.group(name)
            else:
                number = int(m.group(name))
                if number % mult:
                    return None
                values[name] = number // mult
        return values

    def render(self, values: dict) -> str:
        def fill(m: re.Match) -> str:
            value = values[m.group(1)]
            return str(value * int(m.group(2))) if m.group(2) else str(value)
        return _PLACEHOLDER.sub(fill, self.text)


@dataclass(frozen=True)
class ZooRename:
    """One official key pattern and the name the model zoo gives it."""

    official: KeyTemplate
    zoo: KeyTemplate
    why: str


def _zoo(official: str, zoo: str, why: str) -> ZooRename:
    return ZooRename(KeyTemplate(official), KeyTemplate(zoo), why)


_LAYER = "body.{stack:encoder|decoder}.layers.{n}"
_ZOO_COMMON: tuple[ZooRename, ...] = (
    _zoo(_LAYER + ".{attn:self_attn|multihead_attn}.in_proj_weight",
         _LAYER + ".{attn:self_attn|multihead_attn}.in_proj_layer",
         "the zoo's attention Parameter is renamed to its attribute path"),
    _zoo("body.query_embed.weight", "body.query_embed.embedding_table", "nn.Embedding table"),
    _zoo("body.position_encoding.pe.weight", "body.position_encoding.pe.embedding_table", "nn.Embedding table"),
    _zoo("tail.{t}.0.{j*2}.{leaf:weight|bias}", "tail.{t}.0.net.{j}.conv.{leaf:weight|bias}",
         "upsampler stage j is a cell holding `conv`; torch's Sequential puts it at 2j"),
)

#: Files written by the zoo's code (and mindediting's cell): LayerNorm inside a `layernorm` attribute.
ZOO_KEY_MAP: tuple[ZooRename, ...] = (
    _zoo(_LAYER + ".norm{k}.weight", _LAYER + ".norm{k}.layernorm.gamma", "LayerNorm wrapped in LayerPreprocess"),
    _zoo(_LAYER + ".norm{k}.bias", _LAYER + ".norm{k}.layernorm.beta", "LayerNorm wrapped in LayerPreprocess"),
) + _ZOO_COMMON

#: The released MindSpore Hub files: LayerNorm keys without the `.layernorm` level.
ZOO_HUB_KEY_MAP: tuple[ZooRename, ...] = (
    _zoo(_LAYER + ".norm{k}.weight", _LAYER + ".norm{k}.gamma", "Hub files: LayerNorm without its wrapper"),
    _zoo(_LAYER + ".norm{k}.bias", _LAYER + ".norm{k}.beta", "Hub files: LayerNorm without its wrapper"),
) + _ZOO_COMMON

#: Official keys a zoo file never holds: rebuilt from the spec when reading, dropped when writing.
ZOO_ABSENT = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias") + TORCH_ONLY_BUFFERS

#: Head order of a 6-task zoo model (its pre-training data: 3 = rain, 4 = sigma 30, 5 = sigma 50).
ZOO_PRETRAIN_TASKS = ("sr_x2", "sr_x3", "sr_x4", "derain", "denoise_30", "denoise_50")


def zoo_table(hub: bool = False) -> tuple[ZooRename, ...]:
    return ZOO_HUB_KEY_MAP if hub else ZOO_KEY_MAP


def zoo_key(official_key: str, hub: bool = False) -> str | None:
    """Model-zoo name of an official key (None for keys a zoo file does not hold)."""
    if official_key in ZOO_ABSENT:
        return None
    for row in zoo_table(hub):
        values = row.official.match(official_key)
        if values is not None:
            return row.zoo.render(values)
    return official_key


def official_key_from_zoo(key: str, hub: bool = False) -> str:
    """Official key for a model-zoo name (unknown names come back unchanged)."""
    for row in zoo_table(hub):
        values = row.zoo.match(key)
        if values is not None:
            return row.official.render(values)
    return key


def mean_shift_arrays(spec: IPTSpec) -> dict[str, np.ndarray]:
    """The official `sub_mean`/`add_mean` tensors, computed as the official MeanShift does (float32)."""
    channels = len(spec.rgb_mean)
    weight = np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1)
    mean = np.asarray(spec.rgb_mean, dtype=np.float32)
    return {"sub_mean.weight": weight, "sub_mean.bias": np.float32(-spec.rgb_range) * mean,
            "add_mean.weight": weight.copy(), "add_mean.bias": np.float32(spec.rgb_range) * mean}


def zoo_head_order(task_names: tuple[str, ...]) -> list[int]:
    """Positions, in a model with `task_names`, of the heads a zoo file holds, in the zoo's order.

    Only the 6 pre-training tasks are reordered (to `ZOO_PRETRAIN_TASKS`); other models
    keep their order, since the zoo builds its heads in the order of its `--scale` list.
    """
    if sorted(task_names) == sorted(ZOO_PRETRAIN_TASKS):
        return [task_names.index(name) for name in ZOO_PRETRAIN_TASKS]
    return list(range(len(task_names)))


_PER_TASK = re.compile(r"^(head|tail)\.(\d+)\.(.+)$")
_QUERY = "body.query_embed.weight"


def reorder_tasks(state: dict[str, np.ndarray], order: list[int]) -> dict[str, np.ndarray]:
    """Official-keyed arrays with task i taken from task `order[i]` (heads, tails, query rows)."""
    if order == list(range(len(order))):
        return dict(state)
    position = {old: new for new, old in enumerate(order)}
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        match = _PER_TASK.match(key)
        if match and int(match.group(2)) in position:
            out[f"{match.group(1)}.{position[int(match.group(2))]}.{match.group(3)}"] = value
        elif key == _QUERY and value.ndim == 2 and value.shape[0] >= len(order):
            out[key] = np.concatenate([value[order], value[len(order):]])
        else:
            out[key] = value
    return out
