"""Load a model in one call and restore numpy images with it (MindSpore).

    from ipt_ms.inference import load_model, restore_image
    net, spec = load_model("IPT_sr2.ckpt")           # or .pt / .safetensors
    sr = restore_image(net, spec, lr_uint8_hwc, task="sr_x2")   # float32 HWC in [0, 255]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ipt_ms.errors import IPTError
from ipt_ms.levers import CPU_GRAPH_CALL_TILES, Levers, choose_levers, in_effect, parse_policy
from ipt_ms.spec import IPTSpec
from ipt_ms.tiling import tiled_forward


def load_state_into(net, state: dict[str, np.ndarray], spec: IPTSpec) -> None:
    """Copy official-keyed arrays into a MindSpore IPT (every parameter must be covered)."""
    import mindspore as ms

    from ipt_ms.convert.keymap import check_shapes, torch_to_mindspore

    params = torch_to_mindspore(state, spec)
    net_params = {p.name: p for p in net.get_parameters()}
    check_shapes({k: v.shape for k, v in params.items()}, {k: tuple(p.shape) for k, p in net_params.items()},
                 context="weights for the MindSpore network")
    for name, param in net_params.items():
        param.set_data(ms.Tensor(np.ascontiguousarray(params[name], dtype=np.float32)))


def build_model(spec: IPTSpec, state: dict[str, np.ndarray] | None = None, conv_as_matmul: bool | None = None):
    """MindSpore IPT for `spec`, in inference mode, with `state` loaded if given
    (`conv_as_matmul`: see `build_ipt`; None is the default for the device)."""
    from ipt_ms.models import build_ipt

    net = build_ipt(spec, conv_as_matmul=conv_as_matmul)
    if state is not None:
        load_state_into(net, state, spec)
    net.set_train(False)
    return net


#: the private attribute where a network built here keeps its `levers` setting (a name with
#: a leading underscore stays out of the compile cache's key, `ipt_ms.compile_cache`)
_LEVERS_ATTR = "_ipt_levers_setting"
_CHOSEN_ATTR = "_ipt_levers_chosen"  # what `predictor_for` resolved, per (setting, task)


def build_levered_model(spec: IPTSpec, state: dict[str, np.ndarray] | None = None,
                        levers: str | Levers | None = None, task: str | int = 0):
    """`build_model` with the CPU levers of `ipt_ms.levers` applied, as the CLI applies them.

    The convolutions are fixed when the network is built, so they follow the choice for `task`
    (default: the first, the one `ipt-ms tune MODEL` measures by default); `restore_image` picks
    the tiles per call for the task it runs, under the same `levers` setting, which the network
    keeps. `levers`: ``stored``, ``trial`` (measures only when nothing usable is stored),
    ``default`` (the built-in levers), or None for `IPT_MS_LEVERS` (else ``stored``)."""
    chosen = choose_levers(spec, task, levers)
    net = build_model(spec, state, conv_as_matmul=chosen.conv_as_matmul)
    setattr(net, _LEVERS_ATTR, levers)
    setattr(net, _CHOSEN_ATTR, {(repr(levers), spec.task_index(task)): chosen})  # resolved already
    return net


def load_model(weights: str, *, device: str = "auto", mode: str = "graph", levers: str | Levers | None = None,
               **overrides):
    """Build the MindSpore IPT recorded in (or inferred from) a weights file.

    Accepts .ckpt, .pt/.pth and .safetensors. Returns (net, spec). Overrides:
    num_heads, task_names, pos_every, patch_size (for weights that do not record them).
    `levers`: this machine's stored CPU levers or not (`build_levered_model`).
    """
    from ipt_ms.convert.weights import load_weights
    from ipt_ms.runtime import configure

    if isinstance(levers, str):
        parse_policy(levers, "levers")  # before anything loads
    configure(device, mode)
    spec, state = load_weights(weights, **overrides)
    return build_levered_model(spec, state, levers), spec


def run_batches(tiles: np.ndarray, call, *, step: int, scale: int, progress: bool = False,
                pad_to=None) -> np.ndarray:
    """Every predictor's loop: `tiles` through `call` `step` at a time, into one float32 array.

    `call` maps a float32 (m, C, h, w) batch to (m', C, h*scale, w*scale) with m' >= m;
    `pad_to(m)`, if given, is the batch size a short chunk is zero-padded to (compiled or
    fixed-batch graphs), and the extra rows are dropped. One progress bar counting tiles
    (not calls: a call may hold fewer tiles than --batch-size, see CPU_GRAPH_CALL_TILES).
    """
    from ipt_ms.progress import counter

    n, c, h, w = tiles.shape
    out = np.empty((n, c, h * scale, w * scale), np.float32)
    bar = counter(n, desc="tiles", unit="tile", enable=progress)
    try:
        for start in range(0, n, step):
            chunk = np.ascontiguousarray(tiles[start:start + step], dtype=np.float32)
            m = chunk.shape[0]
            size = pad_to(m) if pad_to is not None else m
            if size > m:
                chunk = np.concatenate([chunk, np.zeros((size - m,) + chunk.shape[1:], np.float32)])
            out[start:start + m] = call(chunk)[:m]
            bar.update(m)
    finally:
        bar.close()
    return out


def _bucket(n: int, batch_size: int) -> int:
    """Smallest power of two >= n (capped at batch_size): few distinct shapes to compile."""
    size = 1
    while size < n:
        size *= 2
    return min(size, batch_size)


def _graph_mode_on_cpu() -> bool:
    import mindspore as ms

    return ms.get_context("mode") == ms.GRAPH_MODE and ms.get_context("device_target") == "CPU"


class MindSporePredictor:
    """Runs batches of input tiles through a MindSpore IPT for one task.

    Batches have `batch_size` tiles (at most `CPU_GRAPH_CALL_TILES` per call in Graph mode
    on CPU); a shorter last batch is zero-padded up to a power of two, so Graph mode
    compiles at most log2(batch)+1 shapes per task, whatever the image sizes, instead of
    once per image. `call_tiles` replaces that CPU cap (a per-machine choice, `ipt_ms.levers`).
    """

    framework = "mindspore"

    def __init__(self, net, spec: IPTSpec, task: str | int, batch_size: int = 64, progress: bool = False,
                 call_tiles: int | None = None):
        if batch_size < 1:
            raise IPTError(f"batch size must be >= 1, got {batch_size}")
        self.net, self.spec = net, spec
        self.task_idx = spec.task_index(task)
        self.scale = spec.scales[self.task_idx]
        self.batch_size = batch_size
        cap = CPU_GRAPH_CALL_TILES if call_tiles is None else call_tiles
        self.call_tiles = min(batch_size, cap) if _graph_mode_on_cpu() else batch_size
        self.progress = progress

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        import mindspore as ms

        step = self.call_tiles
        return run_batches(tiles, lambda chunk: self.net(ms.Tensor(chunk), self.task_idx).asnumpy(), step=step,
                           scale=self.scale, progress=self.progress, pad_to=lambda m: _bucket(m, step))


def to_chw(image: np.ndarray) -> np.ndarray:
    """HWC (uint8 or float, [0, 255]) -> CHW float32."""
    if image.ndim != 3:
        raise IPTError(f"expected an H x W x C image, got shape {image.shape}")
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def restore_array(predict, image: np.ndarray, *, scale: int, patch: int, protocol: str = "official",
                  self_ensemble: bool = False) -> np.ndarray:
    """Restore an HWC image with any predictor; returns float32 HWC (not clipped)."""
    out = tiled_forward(to_chw(image), predict, scale=scale, patch=patch, protocol=protocol,
                        self_ensemble=self_ensemble)
    return out.transpose(1, 2, 0)


#: ITU-R BT.601 luma, full range (Pillow's convert("L")): a grayscale input's output gray level
GRAY_FROM_RGB = np.array([0.299, 0.587, 0.114])


def with_input_planes(out: np.ndarray, gray: bool, alpha: np.ndarray | None, scale: int) -> np.ndarray:
    """The restored RGB `out` in the input's channel layout, as Real-ESRGAN/BasicSR users expect.

    A grayscale input ran as RGB (the channel repeated); its output is one channel again:
    0.299 R + 0.587 G + 0.114 B of the float result (GRAY_FROM_RGB; equal to R = G = B
    when the model keeps them equal). An alpha channel passes through: unchanged for
    scale-1 tasks, resized by the task's factor with MATLAB bicubic (`imresize`, the
    resampler of the LR images) for SR. Returns float HxW x (1|2|3|4), unrounded.
    """
    image = out
    if gray:
        image = (out.astype(np.float64) @ GRAY_FROM_RGB)[:, :, None]
    if alpha is None:
        return image
    if scale != 1:
        from ipt_ms.data.imresize import imresize

        alpha = imresize(alpha, output_shape=out.shape[:2])
    return np.concatenate([image.astype(np.float64), alpha[:, :, None].astype(np.float64)], axis=2)


def predictor_for(net, spec: IPTSpec, task: str | int, *, batch_size: int = 64, progress: bool = False,
                  levers: str | Levers | None = None) -> MindSporePredictor:
    """A predictor over an already built `net`, with the tiles per call of the CPU levers for `task`.

    `levers` None: the setting `net` was built with (`build_levered_model`), else `IPT_MS_LEVERS`.
    The convolutions stay as `net` was built; the predictor's `levers` says what is in effect."""
    setting = levers if levers is not None else getattr(net, _LEVERS_ATTR, None)
    memo = getattr(net, _CHOSEN_ATTR, None)
    if memo is None:
        memo = {}
        setattr(net, _CHOSEN_ATTR, memo)
    key = (repr(setting), spec.task_index(task))
    if key not in memo:  # once per network and task: no line, file read or (with the compile cache off) trial per image
        memo[key] = choose_levers(spec, task, setting)
    chosen = memo[key]
    predictor = MindSporePredictor(net, spec, task, batch_size=batch_size, progress=progress,
                                   call_tiles=chosen.call_tiles)
    from ipt_ms.models import Conv2d

    conv = {cell.as_matmul for _, cell in net.cells_and_names() if isinstance(cell, Conv2d)}
    predictor.levers = in_effect(chosen, predictor.call_tiles)
    if len(conv) == 1:  # what the network was built with, whatever was chosen now
        predictor.levers = dataclasses.replace(predictor.levers, conv_as_matmul=conv.pop())
    return predictor


def restore_image(net, spec: IPTSpec, image: np.ndarray, task: str | int, *, batch_size: int = 64,
                  protocol: str = "official", progress: bool = False,
                  levers: str | Levers | None = None) -> np.ndarray:
    """Restore an HWC RGB image (uint8 or float in [0, 255]) of any size with a MindSpore IPT.

    Returns float32 HWC, unclipped; quantise with `np.clip(out, 0, 255).round()`.
    `levers`: as `predictor_for` (None: the setting `load_model` / `create_model` was given).
    """
    if image.ndim != 3 or image.shape[2] != spec.n_colors:
        raise IPTError(f"expected an H x W x {spec.n_colors} image, got shape {image.shape}")
    predictor = predictor_for(net, spec, task, batch_size=batch_size, progress=progress, levers=levers)
    return restore_array(predictor, image, scale=predictor.scale, patch=spec.patch_size, protocol=protocol)
