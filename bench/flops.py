"""Multiply-accumulate count of one IPT forward pass, by layer, from the architecture alone.

The paper quotes "33G FLOPs" per 48x48 patch; that figure counts multiply-accumulates
(the usual convention for vision models): the full single-task x2 model is 33.3 GMAC.
Achieved throughput is reported in real floating-point operations, 2 per MAC
(`flops = 2 * macs`), the convention of hardware peak figures and of
`torch.utils.flop_counter`, which the tests use to check this count.

Counted: convolutions (incl. the 1x1 mean shifts), every linear layer and both attention
matmuls. Not counted (O(elements), <0.5% here): biases, softmax, LayerNorm, ReLU, adds.
"""

from __future__ import annotations

from ipt_ms.spec import IPTSpec


def ipt_macs(spec: IPTSpec, task: str | int = 0) -> dict[str, int]:
    """MACs per input patch, grouped as head / body (encoder, decoder, linears) / tail / mean shift."""
    P, C, F = spec.patch_size, spec.n_colors, spec.n_feats
    L, E, Hd = spec.num_patches, spec.embedding_dim, spec.hidden_dim
    pixels = P * P

    def attention(queries: int, keys: int) -> int:
        projections = queries * E * E + 2 * keys * E * E + queries * E * E  # q, k, v, out_proj
        return projections + 2 * queries * keys * E  # q k^T and attn v, summed over heads

    ffn = 2 * L * E * Hd
    counts = {
        "head": pixels * F * C * 9 + 4 * pixels * F * F * 25,
        "body.encoder": spec.num_layers * (attention(L, L) + ffn),
        "body.decoder": spec.num_layers * (2 * attention(L, L) + ffn),
        "body.linear": 0 if spec.no_mlp else L * E * E + 2 * L * E * Hd,  # linear_encoding + mlp_head
    }
    size, tail = P, 0
    for r in spec.upsampler_factors(spec.scale_of(task)):
        tail += size * size * (r * r * F) * F * 9
        size *= r
    counts["tail"] = tail + size * size * C * F * 9
    counts["mean_shift"] = pixels * C * C + size * size * C * C  # sub_mean on the input, add_mean on the output
    counts["total"] = sum(counts.values())
    return counts


def ipt_flops(spec: IPTSpec, task: str | int = 0) -> int:
    """Floating-point operations (2 per MAC) of one forward pass on one patch."""
    return 2 * ipt_macs(spec, task)["total"]
