"""Literal re-statement of the official MindSpore chop_new (`IPT_post.forward`), tests only.

Follows the zoo code's own steps with plain numpy: overlapping tiles are *summed* into a
canvas (its fold), the top/left strips replace the first P*s rows/columns, the tiles'
central windows are laid side by side (a fold whose stride equals its kernel), the
canvas keeps only a frame of P/8*s pixels, and the bottom/right remainders are
concatenated with the official rounding. `ipt_ms.tiling.zoo_assemble` computes each
pixel from one tile directly; this file checks that the two agree.
"""

from __future__ import annotations

import numpy as np


def _fold_sum(tiles, origins, size):
    canvas = np.zeros((tiles[0].shape[0],) + size, np.float64)
    for tile, (y, x) in zip(tiles, origins):
        canvas[:, y:y + tile.shape[1], x:x + tile.shape[2]] += tile
    return canvas


def _cut_h(model, strip, w, w_cut, P, shave, s):
    stride, c = P - shave, int(shave / 2 * s)
    xs = list(range(0, w - P + 1, stride))
    outs = [model(strip[None, :, :, x:x + P])[0] for x in xs]
    summed = _fold_sum(outs, [(0, i * stride * s) for i in range(len(xs))], (P * s, (w - w_cut) * s))
    centres = [o[:, :, c:P * s - c] for o in outs]
    inner = _fold_sum(centres, [(0, i * (P - shave) * s) for i in range(len(xs))], (P * s, (w - w_cut - shave) * s))
    return np.concatenate([summed[:, :, :c], inner, summed[:, :, (w - w_cut) * s - c:]], axis=2)


def _cut_w(model, strip, h, h_cut, P, shave, s):
    def transposed(t):
        return model(t.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    return _cut_h(transposed, strip.transpose(0, 2, 1), h, h_cut, P, shave, s).transpose(0, 2, 1)


def zoo_chop_reference(model, x, P, s):
    """x: (C, H, W) numpy with H, W >= P; model maps (N, C, P, P) -> (N, C, P*s, P*s)."""
    _, h, w = x.shape
    shave = P // 4
    stride, c = P - shave, int(shave / 2 * s)
    h_cut, w_cut = (h - P) % stride, (w - P) % stride
    H, W = (h - h_cut) * s, (w - w_cut) * s
    origins = [(r, q) for r in range(0, h - P + 1, stride) for q in range(0, w - P + 1, stride)]
    outs = [model(x[None, :, r:r + P, q:q + P])[0] for r, q in origins]
    y = _fold_sum(outs, [(r * s, q * s) for r, q in origins], (H, W))
    y_h_top = _cut_h(model, x[:, :P, :], w, w_cut, P, shave, s)
    y_w_top = _cut_w(model, x[:, :, :P], h, h_cut, P, shave, s)
    y = y_h_top if y.shape[1] == P * s else np.concatenate([y_h_top, y[:, P * s:, :]], axis=1)
    y = y_w_top if y.shape[2] == P * s else np.concatenate([y_w_top, y[:, :, P * s:]], axis=2)
    k = (P - shave) * s
    inner = _fold_sum([o[:, c:P * s - c, c:P * s - c] for o in outs],
                      [(r // stride * k, q // stride * k) for r, q in origins], (H - shave * s, W - shave * s))
    middle = np.concatenate([y[:, :c, c:W - c], inner, y[:, H - c:, c:W - c]], axis=1)
    y = np.concatenate([y[:, :, :c], middle, y[:, :, W - c:]], axis=2)
    y_h_cut = _cut_h(model, x[:, h - P:, :], w, w_cut, P, shave, s)
    y_w_cut = _cut_w(model, x[:, :, w - P:], h, h_cut, P, shave, s)
    y_hw_cut = model(x[None, :, h - P:, w - P:])[0]
    a_h, b_h = int((P - h_cut) / 2 * s), int((P - h_cut) / 2 * s + 0.5)
    a_w, b_w = int((P - w_cut) / 2 * s), int((P - w_cut) / 2 * s + 0.5)
    y = np.concatenate([y[:, :y.shape[1] - a_h, :], y_h_cut[:, b_h:, :]], axis=1)
    y_w_cat = np.concatenate([y_w_cut[:, :y_w_cut.shape[1] - a_h, :], y_hw_cut[:, b_h:, :]], axis=1)
    return np.concatenate([y[:, :, :y.shape[2] - a_w], y_w_cat[:, :, b_w:]], axis=2)
