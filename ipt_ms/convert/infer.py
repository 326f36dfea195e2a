"""Infer an `IPTSpec` from the keys and shapes of official-keyed weights.

The weights tell almost everything: the task list and scales (tail shapes), n_feats and
colours (first head conv), token width and patch_dim (linear_encoding / attention),
tokens per patch and so patch_size (query or position embedding), num_queries,
num_layers, and whether LayerNorm / MLP / position embedding exist. They cannot tell
the number of attention heads (default 12, as every released model) or `pos_every`.
"""

from __future__ import annotations

import math
import re

from ipt_ms.errors import IPTError
from ipt_ms.spec import IPTSpec


def _indices(keys, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := regex.match(k))})


def infer_spec(shapes: dict[str, tuple[int, ...]], *, num_heads: int = 12, task_names: list[str] | None = None,
               pos_every: bool = False, patch_size: int | None = None, source: str = "weights") -> IPTSpec:
    """Architecture of official-keyed weights (`shapes`: key -> shape).

    Raises IPTError when the weights are not an IPT model or are inconsistent.
    """
    keys = list(shapes)

    def not_ipt(why: str) -> IPTError:
        return IPTError(f"{source} is not an IPT checkpoint ({why})")

    heads = _indices(keys, r"^head\.(\d+)\.0\.weight$")
    tails = _indices(keys, r"^tail\.(\d+)\.1\.weight$")
    if not heads:
        raise not_ipt("no head.0.0.weight")
    if heads != list(range(len(heads))) or tails != heads:
        raise not_ipt(f"heads {heads} and tails {tails} are not the same 0..n-1 list")
    n_feats, n_colors = shapes["head.0.0.weight"][:2]

    scales = []
    for i in heads:
        convs = _indices(keys, rf"^tail\.{i}\.0\.(\d+)\.weight$")
        if not convs:
            scales.append(1)
            continue
        ratio = shapes[f"tail.{i}.0.{convs[0]}.weight"][0] / n_feats
        r = math.isqrt(int(ratio))
        if r * r != ratio or r not in (2, 3) or (r == 3 and len(convs) != 1):
            raise not_ipt(f"tail {i} upsampler has unexpected shape {shapes[f'tail.{i}.0.{convs[0]}.weight']}")
        scales.append(3 if r == 3 else 2 ** len(convs))

    no_mlp = "body.linear_encoding.weight" not in shapes
    no_pos = "body.position_encoding.pe.weight" not in shapes
    no_norm = "body.encoder.layers.0.norm1.weight" not in shapes
    enc = _indices(keys, r"^body\.encoder\.layers\.(\d+)\.")
    dec = _indices(keys, r"^body\.decoder\.layers\.(\d+)\.")
    if not enc:
        raise not_ipt("no body.encoder.layers")
    if enc != list(range(len(enc))) or dec != enc:
        raise not_ipt(f"encoder layers {enc} and decoder layers {dec} differ")

    embed = shapes["body.encoder.layers.0.self_attn.in_proj_weight"][1]
    patch_dim = math.isqrt(embed // n_feats)
    if patch_dim * patch_dim * n_feats != embed:
        raise not_ipt(f"token width {embed} is not n_feats {n_feats} x patch_dim^2")

    if not no_mlp:
        num_queries, total = shapes["body.query_embed.weight"]
        tokens = total // embed
    else:
        num_queries = len(heads)
        tokens = shapes["body.position_encoding.pe.weight"][0] if not no_pos else None
    if tokens is not None:
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise not_ipt(f"{tokens} tokens per patch is not a square grid")
        inferred_size = side * patch_dim
        if patch_size is not None and patch_size != inferred_size:
            raise IPTError(f"--patch-size {patch_size} contradicts the weights, which imply {inferred_size}")
        patch_size = inferred_size
    elif patch_size is None:
        patch_size = 48  # not recorded by weights without query or position embedding

    return IPTSpec(
        scales=tuple(scales), task_names=tuple(task_names) if task_names else None,
        n_feats=n_feats, n_colors=n_colors, patch_size=patch_size, patch_dim=patch_dim,
        num_heads=num_heads, num_layers=len(enc), num_queries=num_queries,
        no_norm=no_norm, no_mlp=no_mlp, pos_every=pos_every, no_pos=no_pos,
    )
