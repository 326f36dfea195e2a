"""Named IPT architectures and one entry point that builds them, MindCV-style.

    import ipt_ms
    ipt_ms.list_models()                                   # ['ipt_denoise_30', ..., 'ipt_tiny']
    net, spec = ipt_ms.create_model("ipt_sr_x2", checkpoint="ipt_x2_ascend_v190_set5_research_cv_acc38.3.ckpt")
    net, spec = ipt_ms.create_model("ipt_small", pretrained=True)  # weights shipped in the package

`pretrained=True` loads weights that ship inside the package (`ipt_ms/pretrained/`; today
only `ipt_small`, trained by this project: docs/model_card_small.md); nothing is downloaded.

A checkpoint may be in any layout `ipt_ms.convert.weights` reads (official PyTorch, ipt-ms,
MindSpore model zoo / Hub / zoo trainer checkpoint). Unlike `load_param_into_net`, a file
that does not hold exactly the named architecture is refused with the differences listed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec


@dataclass(frozen=True)
class ModelEntry:
    """One named architecture."""

    name: str
    make_spec: Callable[..., IPTSpec]
    description: str
    shipped: str | None = None  # file name in ipt_ms/pretrained/ of weights that ship with the package


#: where weights that ship inside the package live
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def _small(**overrides: Any) -> IPTSpec:
    """The shipped small model: six tasks, 32 features, 1+1 layers, 4 heads, 24-px patches."""
    return IPTSpec.pretrain(**{"n_feats": 32, "patch_size": 24, "num_heads": 4, "num_layers": 1, **overrides})


def _single(task: str) -> Callable[..., IPTSpec]:
    return lambda **overrides: IPTSpec.official(task, **overrides)


_ENTRIES = (
    ModelEntry("ipt_pretrain", IPTSpec.pretrain,
               "6-task pre-training model, 118.9M parameters (IPT_pretrain.pt; the zoo's 6-task checkpoints)"),
    ModelEntry("ipt_sr_x2", _single("sr_x2"), "x2 super-resolution (IPT_sr2.pt; Hub ipt_x2_*.ckpt)"),
    ModelEntry("ipt_sr_x3", _single("sr_x3"), "x3 super-resolution (IPT_sr3.pt; Hub ipt_x3_*.ckpt)"),
    ModelEntry("ipt_sr_x4", _single("sr_x4"), "x4 super-resolution (IPT_sr4.pt; Hub ipt_x4_*.ckpt)"),
    ModelEntry("ipt_denoise_30", _single("denoise_30"), "denoising, sigma 30 (IPT_dn30.pt; Hub ipt_denoise30_*)"),
    ModelEntry("ipt_denoise_50", _single("denoise_50"), "denoising, sigma 50 (IPT_dn50.pt; Hub ipt_denoise50_*)"),
    ModelEntry("ipt_derain", _single("derain"), "deraining (IPT_derain.pt; Hub ipt_derain_*.ckpt)"),
    ModelEntry("ipt_tiny", IPTSpec.tiny, "sr_x2 + denoise_30, 16 features, 1+1 layers, 2 heads, 24-px patches, "
               "0.86M parameters: configs/tiny.yaml, make-weights --preset tiny, tests and CPU demos"),
    ModelEntry("ipt_small", _small, "6 tasks, 32 features, 1+1 layers, 4.0M parameters, trained by this project "
               "on bundled photos; ships with the package (pretrained=True, docs/model_card_small.md)",
               shipped="ipt_small.safetensors"),
)
MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}

#: options a checkpoint must agree with (the others, e.g. dropout or LayerNorm epsilon, are the caller's)
_CHECKED = ("scales", "task_names", "n_feats", "n_colors", "patch_size", "patch_dim", "num_heads", "num_layers",
            "num_queries", "no_norm", "no_mlp", "pos_every", "no_pos")


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered architectures matching a shell-style `pattern`, sorted."""
    return sorted(name for name in MODELS if fnmatch.fnmatch(name, pattern))


def model_spec(name: str, **overrides: Any) -> IPTSpec:
    """The architecture registered as `name`, with IPTSpec fields overridden (e.g. num_layers=2)."""
    if name not in MODELS:
        raise IPTError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    fields = {f.name for f in dataclasses.fields(IPTSpec)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise IPTError(f"unknown architecture option(s) {', '.join(unknown)} for {name}; "
                       f"options are IPTSpec fields: {', '.join(sorted(fields))}")
    base = MODELS[name].make_spec()
    return base.replace(**overrides) if overrides else base


def pretrained_weights(name: str) -> Path:
    """The weights file that ships with the package for model `name`; refused when there is none."""
    if name not in MODELS:
        raise IPTError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    entry = MODELS[name]
    shipped = [n for n in list_models() if MODELS[n].shipped]
    if entry.shipped is None:
        raise IPTError(f"no weights ship with {name}: give a checkpoint file instead (docs/usage.md says where "
                       f"to get the official ones); models with shipped weights: {', '.join(shipped) or 'none'}")
    path = PRETRAINED_DIR / entry.shipped
    if not path.is_file():
        raise IPTError(f"the shipped weights of {name} are missing from this installation ({str(path)!r}); "
                       "reinstall ipt-ms, or train them with `make train-small`")
    return path


def create_model(name: str, checkpoint: str | None = None, *, pretrained: bool = False, device: str | None = None,
                 mode: str | None = None, levers: str | None = None, **overrides: Any):
    """Build the MindSpore IPT registered as `name`: returns (network in inference mode, spec).

    Args:
        name: one of `list_models()`.
        checkpoint: weights to load (any supported format and layout); None keeps the
            fresh initialisation (or, with `pretrained`, loads the weights that ship with
            the package; see `pretrained_weights`). It must hold exactly this architecture (after
            `overrides`); a single-task file that does not record its task is taken to be
            the named model's task.
        device, mode: if given, `ipt_ms.runtime.configure(device, mode)` is called first.
        levers: this machine's CPU levers (`ipt_ms.inference.build_levered_model`): ``stored``,
            ``trial``, ``default``, or None for `IPT_MS_LEVERS` (else ``stored``), as the CLI.
        overrides: IPTSpec fields, e.g. ``num_layers=2`` or ``layer_norm_eps=1e-7``.
    """
    from ipt_ms.inference import build_levered_model
    from ipt_ms.levers import parse_policy

    if levers is not None:
        parse_policy(levers, "levers")  # before anything loads
    spec = model_spec(name, **overrides)
    if pretrained:
        if checkpoint is not None:
            raise IPTError("give either a checkpoint or pretrained=True, not both")
        checkpoint = str(pretrained_weights(name))
    if device is not None or mode is not None:
        from ipt_ms.runtime import configure

        configure(device or "auto", mode or "graph")
    if checkpoint is None:
        return build_levered_model(spec, None, levers), spec
    from ipt_ms.convert.weights import official_state, read_weight_file, resolve_spec

    weights = read_weight_file(checkpoint)
    unrecorded = {} if weights.spec is not None else {"num_heads": spec.num_heads, "pos_every": spec.pos_every}
    if weights.spec is None and spec.no_mlp and spec.no_pos:  # the only case the tensors cannot tell it
        unrecorded["patch_size"] = spec.patch_size
    found = resolve_spec(weights, **unrecorded)
    if spec.num_tasks == 1:
        found = found.name_placeholder_task(spec.task_names[0])
    differences = [f"{f} {getattr(found, f)!r} (wanted {getattr(spec, f)!r})" for f in _CHECKED
                   if getattr(found, f) != getattr(spec, f)]
    if differences:
        raise IPTError(f"{checkpoint!r} does not hold {name}: " + "; ".join(differences))
    return build_levered_model(spec, official_state(weights, spec), levers), spec
