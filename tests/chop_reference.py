"""Literal re-statement of the official PyTorch forward_chop, for tests only.

Written from the algorithm's description with torch fold/unfold and the official index
arithmetic, without deduplicating tiles, so `ipt_ms.tiling.official_assemble` (which
runs each distinct tile once and assembles in numpy) can be checked against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _run(model, tiles):
    return torch.cat([model(tiles[i:i + 7]) for i in range(0, tiles.shape[0], 7)], dim=0)


def _strip_h(model, strip, w_main, P, shave, s):
    st, ost = shave // 2, int(shave / 2 * s)
    tiles = F.unfold(strip, P, stride=st).transpose(0, 2).reshape(-1, strip.shape[1], P, P)
    out = _run(model, tiles)
    n = out.shape[0]
    summed = F.fold(out.reshape(n, -1, 1).transpose(0, 2), (P * s, w_main * s), P * s, stride=ost)
    centre = out[..., :, ost:P * s - ost].reshape(n, -1, 1).transpose(0, 2)
    kernel = (P * s, P * s - shave * s)
    size = (P * s, (w_main - shave) * s)
    inner = F.fold(centre, size, kernel, stride=ost)
    ones = torch.ones(1, out.shape[1], *size)
    inner = inner / F.fold(F.unfold(ones, kernel, stride=ost), size, kernel, stride=ost)
    summed[..., :, ost:w_main * s - ost] = inner
    return summed


def _strip_v(model, strip, h_main, P, shave, s):
    flipped = _strip_h(lambda t: model(t.transpose(2, 3)).transpose(2, 3), strip.transpose(2, 3),
                       h_main, P, shave, s)
    return flipped.transpose(2, 3)


def forward_chop_reference(model, x, P, s):
    """x: (1, C, H, W) torch tensor with H, W >= P; model maps (N,C,P,P) -> (N,C,Ps,Ps)."""
    h, w = x.shape[-2:]
    shave = P // 2
    st, ost = shave // 2, int(shave / 2 * s)
    h_cut, w_cut = (h - P) % st, (w - P) % st
    h_main, w_main = h - h_cut, w - w_cut
    tiles = F.unfold(x, P, stride=st).transpose(0, 2).reshape(-1, x.shape[1], P, P)
    out = _run(model, tiles)
    n = out.shape[0]
    y = F.fold(out.reshape(n, -1, 1).transpose(0, 2), (h_main * s, w_main * s), P * s, stride=ost)
    y[..., :P * s, :] = _strip_h(model, x[..., :P, :], w_main, P, shave, s)
    y[..., :, :P * s] = _strip_v(model, x[..., :, :P], h_main, P, shave, s)
    centre = out[..., ost:P * s - ost, ost:P * s - ost].reshape(n, -1, 1).transpose(0, 2)
    k = P * s - shave * s
    size = ((h_main - shave) * s, (w_main - shave) * s)
    inner = F.fold(centre, size, k, stride=ost)
    ones = torch.ones(1, out.shape[1], *size)
    inner = inner / F.fold(F.unfold(ones, k, stride=ost), size, k, stride=ost)
    y[..., ost:h_main * s - ost, ost:w_main * s - ost] = inner
    bottom = _strip_h(model, x[..., h - P:, :], w_main, P, shave, s)
    right = _strip_v(model, x[..., :, w - P:], h_main, P, shave, s)
    corner = model(x[..., h - P:, w - P:])
    a_h, b_h = int((P - h_cut) / 2 * s), int((P - h_cut) / 2 * s + 0.5)
    a_w, b_w = int((P - w_cut) / 2 * s), int((P - w_cut) / 2 * s + 0.5)
    y = torch.cat([y[..., :y.shape[2] - a_h, :], bottom[..., b_h:, :]], dim=2)
    right = torch.cat([right[..., :right.shape[2] - a_h, :], corner[..., b_h:, :]], dim=2)
    return torch.cat([y[..., :, :y.shape[3] - a_w], right[..., :, b_w:]], dim=3)
