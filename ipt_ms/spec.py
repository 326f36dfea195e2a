"""The IPT architecture, described once and framework-free.

`IPTSpec` holds every option of the official model (huawei-noah/Pretrained-IPT
`model/ipt.py` + `option.py`). The MindSpore network (`ipt_ms.models`) and the PyTorch
twin (`parity.torch_ipt`) are both built from it, and `torch_state_shapes()` derives the
official PyTorch state_dict (every key and shape, in the official order) from it, so
manifests, converters and tests all follow the same description.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ipt_ms.errors import IPTError
from ipt_ms.tasks import PRETRAIN_SCALES, PRETRAIN_TASKS, Task, default_task_names, parse_task

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean used by the official MeanShift
#: the tasks of the one small model, `IPTSpec.tiny`
TINY_TASKS = ("sr_x2", "denoise_30")

#: Upper bounds far above any published IPT, so that an architecture read from a file's
#: metadata cannot ask for absurd allocations before its tensors are checked.
LIMITS = {"n_feats": 4096, "n_colors": 64, "rgb_range": 65535, "patch_size": 4096, "patch_dim": 64,
          "num_heads": 1024, "num_layers": 1024, "num_queries": 4096, "tasks": 256, "scale": 64}
_INT_FIELDS = ("n_feats", "n_colors", "rgb_range", "patch_size", "patch_dim", "num_heads", "num_layers",
               "num_queries")


def _integer(value: Any, what: str) -> int:
    """`value` as an int when it is one (3, 3.0, numpy ints); TypeError otherwise (3.5, "3", True)."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise TypeError(f"{what} must hold integers, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class IPTSpec:
    """Architecture of one IPT model.

    Args:
        scales: output/input ratio of each task's tail, in head/tail/query order.
        task_names: one name per scale; defaults follow `ipt_ms.tasks.default_task_names`.
        n_feats: feature channels of heads and tails (official 64).
        n_colors: image channels (3).
        rgb_range: pixel range the model works in (255).
        patch_size: side of the square input patch the body sees (48). The model is
            defined for exactly this input size; whole images go through tiling.
        patch_dim: side of one transformer token's patch (3), so a token has
            ``n_feats * patch_dim**2`` values (576).
        num_heads: attention heads (12).
        num_layers: encoder layers and decoder layers, each (12).
        num_queries: rows of the task query embedding (1 per task; 6 in pre-training).
        dropout_rate: dropout in the body (0 at test time, as official).
        no_norm: replace every LayerNorm by identity (official ``--no_norm``).
        no_mlp: drop linear_encoding, mlp_head and the task queries (``--no_mlp``).
        pos_every: add the position embedding to q/k in every layer instead of once.
        no_pos: no position embedding.
        layer_norm_eps: 1e-5 as in PyTorch (MindSpore's own default is 1e-7).
    """

    scales: tuple[int, ...] = (2,)
    task_names: tuple[str, ...] | None = None
    n_feats: int = 64
    n_colors: int = 3
    rgb_range: int = 255
    patch_size: int = 48
    patch_dim: int = 3
    num_heads: int = 12
    num_layers: int = 12
    num_queries: int = 1
    dropout_rate: float = 0.0
    no_norm: bool = False
    no_mlp: bool = False
    pos_every: bool = False
    no_pos: bool = False
    layer_norm_eps: float = 1e-5
    rgb_mean: tuple[float, float, float] = field(default=RGB_MEAN)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise in place once
        try:
            set_(self, "scales", tuple(_integer(s, "scales") for s in self.scales))
            set_(self, "rgb_mean", tuple(float(m) for m in self.rgb_mean))
            set_(self, "dropout_rate", float(self.dropout_rate))
            set_(self, "layer_norm_eps", float(self.layer_norm_eps))
        except (TypeError, ValueError) as err:
            raise IPTError(f"invalid IPT architecture: {err}") from None
        if self.task_names is None:
            set_(self, "task_names", tuple(default_task_names(self.scales)))
        else:
            set_(self, "task_names", tuple(self.task_names))
        self._validate()

    # ----------------------------------------------------------------- validation
    def _validate(self) -> None:
        def bad(msg: str) -> IPTError:
            return IPTError(f"invalid IPT architecture: {msg}")

        for attr in _INT_FIELDS:
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(f"{attr} must be an integer, got {value!r}")
            if value > LIMITS[attr]:
                raise bad(f"{attr} {value} is above the supported maximum {LIMITS[attr]}")
        for attr in ("no_norm", "no_mlp", "pos_every", "no_pos"):
            if not isinstance(getattr(self, attr), bool):
                raise bad(f"{attr} must be true or false, got {getattr(self, attr)!r}")
        if not self.scales:
            raise bad("at least one task (scale) is needed")
        if len(self.scales) > LIMITS["tasks"]:
            raise bad(f"{len(self.scales)} tasks is above the supported maximum {LIMITS['tasks']}")
        if any(s > LIMITS["scale"] for s in self.scales):
            raise bad(f"scales {list(self.scales)} exceed the supported maximum {LIMITS['scale']}")
        for s in self.scales:
            if s < 1 or not (s & (s - 1) == 0 or s == 3):
                raise bad(f"scale {s} is not supported (1, 3 or a power of two, as the official Upsampler)")
        if len(self.rgb_mean) != self.n_colors:
            raise bad(f"rgb_mean has {len(self.rgb_mean)} values for {self.n_colors} colours")
        if not all(isinstance(n, str) for n in self.task_names):
            raise bad(f"task names must be strings, got {list(self.task_names)}")
        if len(self.task_names) != len(self.scales):
            raise bad(f"{len(self.task_names)} task names for {len(self.scales)} scales")
        if len(set(self.task_names)) != len(self.task_names):
            raise bad(f"task names repeat: {list(self.task_names)}")
        for name, s in zip(self.task_names, self.scales):
            task = parse_task(name)
            if task.scale != s:
                raise bad(f"task {name!r} implies scale {task.scale} but its tail has scale {s}")
        for attr in ("n_feats", "n_colors", "patch_size", "patch_dim", "num_heads", "num_layers"):
            if getattr(self, attr) < 1:
                raise bad(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if self.patch_size % self.patch_dim:
            raise bad(f"patch_size {self.patch_size} is not a multiple of patch_dim {self.patch_dim}")
        if self.embedding_dim % self.num_heads:
            raise bad(f"embedding dim {self.embedding_dim} is not divisible by num_heads {self.num_heads}")
        if not self.no_mlp and self.num_queries < self.num_tasks:
            raise bad(f"num_queries {self.num_queries} < number of tasks {self.num_tasks}")
        if self.pos_every and self.no_pos:
            raise bad("pos_every and no_pos exclude each other")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise bad(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")

    # ----------------------------------------------------------------- derived sizes
    @property
    def num_tasks(self) -> int:
        return len(self.scales)

    @property
    def embedding_dim(self) -> int:
        """Token width: n_feats * patch_dim**2 (576)."""
        return self.n_feats * self.patch_dim**2

    @property
    def hidden_dim(self) -> int:
        """FFN and mlp_head width, 4x the token width (2304)."""
        return 4 * self.embedding_dim

    @property
    def num_patches(self) -> int:
        """Tokens per input patch: (patch_size / patch_dim)**2 (256)."""
        return (self.patch_size // self.patch_dim) ** 2

    @property
    def tasks(self) -> list[Task]:
        return [parse_task(n) for n in self.task_names]

    def task_index(self, task: str | int) -> int:
        """Resolve a task given by name or index ("sr_x2", 0, "0")."""
        if isinstance(task, str) and task.strip().lstrip("-").isdigit():
            task = int(task)
        if isinstance(task, int):
            if 0 <= task < self.num_tasks:
                return task
            raise IPTError(f"task index {task} out of range; this model has {self.num_tasks} tasks: "
                           f"{self.describe_tasks()}")
        if task in self.task_names:
            return self.task_names.index(task)
        raise IPTError(f"unknown task {task!r}; this model knows: {self.describe_tasks()}")

    def name_placeholder_task(self, task: str | int) -> IPTSpec:
        """This spec with its lone unnamed head called `task`, when that is what `task` asks for.

        The released single-task checkpoints (IPT_dn30.pt, IPT_derain.pt, ...) do not record
        what their scale-1 head restores, so it is inferred as ``restore_0``. Asking such a
        model for a well-formed task of the same scale (``denoise_30``) names the head; any
        other request is left for `task_index` to accept or reject.
        """
        if not isinstance(task, str) or task in self.task_names or task.strip().lstrip("-").isdigit():
            return self
        placeholders = [i for i, n in enumerate(self.task_names) if parse_task(n).kind == "restore"]
        try:
            wanted = parse_task(task)
        except IPTError:
            return self
        if self.num_tasks != 1 or placeholders != [0] or wanted.scale != self.scales[0]:
            return self
        return self.replace(task_names=(task,))

    def describe_tasks(self) -> str:
        return ", ".join(f"{i}={n}" for i, n in enumerate(self.task_names))

    def scale_of(self, task: str | int) -> int:
        return self.scales[self.task_index(task)]

    @staticmethod
    def upsampler_factors(scale: int) -> list[int]:
        """Pixel-shuffle factors of the official Upsampler: 2^n -> n x 2, 3 -> [3], 1 -> []."""
        if scale == 3:
            return [3]
        return [2] * int(round(math.log2(scale)))

    # ----------------------------------------------------------------- key manifest
    def torch_state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every key and shape of the official PyTorch state_dict, in its order."""
        C, F, E, Hd = self.n_colors, self.n_feats, self.embedding_dim, self.hidden_dim
        shapes: dict[str, tuple[int, ...]] = {}
        for name in ("sub_mean", "add_mean"):
            shapes[f"{name}.weight"] = (C, C, 1, 1)
            shapes[f"{name}.bias"] = (C,)
        for i in range(self.num_tasks):
            shapes[f"head.{i}.0.weight"] = (F, C, 3, 3)
            shapes[f"head.{i}.0.bias"] = (F,)
            for block in (1, 2):
                for conv in (0, 2):
                    shapes[f"head.{i}.{block}.body.{conv}.weight"] = (F, F, 5, 5)
                    shapes[f"head.{i}.{block}.body.{conv}.bias"] = (F,)
        if not self.no_mlp:
            shapes["body.linear_encoding.weight"] = (E, E)
            shapes["body.linear_encoding.bias"] = (E,)
            shapes["body.mlp_head.0.weight"] = (Hd, E)
            shapes["body.mlp_head.0.bias"] = (Hd,)
            shapes["body.mlp_head.3.weight"] = (E, Hd)
            shapes["body.mlp_head.3.bias"] = (E,)
            shapes["body.query_embed.weight"] = (self.num_queries, E * self.num_patches)
        for stack, attns, norms in (("encoder", ("self_attn",), 2), ("decoder", ("self_attn", "multihead_attn"), 3)):
            for j in range(self.num_layers):
                prefix = f"body.{stack}.layers.{j}"
                for attn in attns:
                    shapes[f"{prefix}.{attn}.in_proj_weight"] = (3 * E, E)
                    shapes[f"{prefix}.{attn}.out_proj.weight"] = (E, E)
                shapes[f"{prefix}.linear1.weight"] = (Hd, E)
                shapes[f"{prefix}.linear1.bias"] = (Hd,)
                shapes[f"{prefix}.linear2.weight"] = (E, Hd)
                shapes[f"{prefix}.linear2.bias"] = (E,)
                if not self.no_norm:
                    for k in range(1, norms + 1):
                        shapes[f"{prefix}.norm{k}.weight"] = (E,)
                        shapes[f"{prefix}.norm{k}.bias"] = (E,)
        if not self.no_pos:
            shapes["body.position_encoding.position_ids"] = (1, self.num_patches)
            shapes["body.position_encoding.pe.weight"] = (self.num_patches, E)
        for i, s in enumerate(self.scales):
            for k, r in enumerate(self.upsampler_factors(s)):
                shapes[f"tail.{i}.0.{2 * k}.weight"] = (r * r * F, F, 3, 3)
                shapes[f"tail.{i}.0.{2 * k}.bias"] = (r * r * F,)
            shapes[f"tail.{i}.1.weight"] = (C, F, 3, 3)
            shapes[f"tail.{i}.1.bias"] = (C,)
        return shapes

    #: keys that are buffers, not parameters (int64 in the official checkpoints)
    TORCH_BUFFERS = ("body.position_encoding.position_ids",)

    def num_parameters(self) -> int:
        """Parameter count as PyTorch reports it (buffers excluded, MeanShift included)."""
        return sum(math.prod(shape) for key, shape in self.torch_state_shapes().items()
                   if key not in self.TORCH_BUFFERS)

    # ----------------------------------------------------------------- parity stages
    @property
    def body_stage_count(self) -> int:
        """Stages the transformer body reports: linear_encoding, the layers, mlp_head, fold."""
        return 2 * self.num_layers + 1 + 2 * (not self.no_mlp)

    def stage_names(self, task: str | int) -> list[str]:
        """Names of the intermediate results both frameworks report, in forward order."""
        names = ["mean_shift", "head.conv", "head.resblock1", "head.resblock2"]
        if not self.no_mlp:
            names.append("body.linear_encoding")
        names += [f"body.encoder.{j}" for j in range(self.num_layers)]
        names += [f"body.decoder.{j}" for j in range(self.num_layers)]
        if not self.no_mlp:
            names.append("body.mlp_head")
        names += ["body.fold", "body.residual"]
        names += [f"tail.upsample.{k}" for k in range(len(self.upsampler_factors(self.scale_of(task))))]
        names += ["tail.conv", "output"]
        return names

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scales"] = list(self.scales)
        d["task_names"] = list(self.task_names)
        d["rgb_mean"] = list(self.rgb_mean)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IPTSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise IPTError(f"unknown IPT architecture option(s): {', '.join(unknown)}")
        data = dict(data)
        for key in ("scales", "task_names", "rgb_mean"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> IPTSpec:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError) as err:
            raise IPTError(f"unreadable IPT architecture description: {err}") from err

    def replace(self, **changes: Any) -> IPTSpec:
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- presets
    @classmethod
    def official(cls, task: str = "sr_x2", **overrides: Any) -> IPTSpec:
        """A released single-task model (IPT_sr2.pt, IPT_dn30.pt, IPT_derain.pt, ...)."""
        return cls(scales=(parse_task(task).scale,), task_names=(task,), **overrides)

    @classmethod
    def pretrain(cls, **overrides: Any) -> IPTSpec:
        """The 6-task pre-training model (IPT_pretrain.pt)."""
        return cls(scales=PRETRAIN_SCALES, task_names=PRETRAIN_TASKS, num_queries=len(PRETRAIN_TASKS), **overrides)

    @classmethod
    def tiny(cls, scales: tuple[int, ...] | None = None, **overrides: Any) -> IPTSpec:
        """The one small model, defined here only: sr_x2 + denoise_30, 16 features, 1+1 layers, 2 heads,
        24-px patches (0.86M parameters). It is configs/tiny.yaml's `model:`, `make-weights --preset tiny`,
        the registry's `ipt_tiny` and doctor's model; tests vary it with `scales=`/`task_names=`/fields.

        Without `scales`, the scales follow `task_names` (default `TINY_TASKS`); with `scales` and no
        `task_names`, the tasks are left unnamed (default names), as a file that only says its scales.
        """
        if scales is None:
            names = overrides.setdefault("task_names", TINY_TASKS)
            scales = tuple(parse_task(name).scale for name in names)
        params: dict[str, Any] = dict(n_feats=16, patch_size=24, patch_dim=3, num_heads=2, num_layers=1,
                                      num_queries=len(scales))
        params.update(overrides)
        return cls(scales=tuple(scales), **params)
