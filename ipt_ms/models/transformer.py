"""IPT transformer body in MindSpore: container -> encoder/decoder stack -> layer.

Follows the official `VisionTransformer` (huawei-noah/Pretrained-IPT, itself derived
from DETR's transformer) and keeps its attribute names so checkpoint keys line up.
How it departs from a textbook `nn.Transformer`:

* pre-norm layers only; no final LayerNorm after either stack;
* attention has no biases (q/k/v packed in `in_proj_weight`, `out_proj` without bias);
* the decoder's target *is* the encoder output, and the task's query embedding is added
  to the queries and keys of self-attention and to the query of cross-attention;
* tokens are non-overlapping patch_dim x patch_dim patches of the head's feature map,
  cut with reshape/transpose (exact for kernel == stride, and exportable to ONNX, which
  has no Im2Col in MindSpore's exporter).

Every reshape that carries the batch writes it as -1 instead of the traced size: the
same computation, but the exported ONNX/MindIR graphs then accept any batch (MindSpore's
exporter bakes reshape targets in as constants).

Tensors inside the body use the official (tokens L, batch B, width E) layout. Every
matmul is fed a 2-D tensor: Graph mode on CPU broadcasts the weight of a 3-D x 2-D
matmul, which made the stock `nn.MultiheadAttention` ~300x slower.
"""

from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Normal, XavierUniform, initializer

from ipt_ms.models import compat
from ipt_ms.models.cpu_grads import SoftmaxLastAxis
from ipt_ms.spec import IPTSpec


def patch_unfold(x, patch: int, low_memory: bool = False):
    """(B, C, H, W) -> (L, B, C*patch*patch) tokens, row-major over the patch grid.

    Equals `F.unfold(x, patch, stride=patch).permute(2, 0, 1)`; the token values are in
    (C, kh, kw) order like Im2Col.
    """
    B, C, H, W = x.shape
    gh, gw = H // patch, W // patch
    x = x.reshape((-1, C, gh, patch, gw, patch))
    x = compat.permute(x, (2, 4, 0, 1, 3, 5), low_memory)
    return x.reshape((gh * gw, -1, C * patch * patch))


def patch_fold(tokens, patch: int, height: int, width: int, low_memory: bool = False):
    """Inverse of `patch_unfold`: (L, B, C*patch*patch) -> (B, C, height, width)."""
    L, B, D = tokens.shape
    gh, gw = height // patch, width // patch
    C = D // (patch * patch)
    x = tokens.reshape((gh, gw, -1, C, patch, patch))
    x = compat.permute(x, (2, 3, 0, 4, 1, 5), low_memory)
    return x.reshape((-1, C, height, width))


def with_pos_embed(tensor, pos):
    """Add a position/query embedding when there is one (DETR's helper)."""
    return tensor if pos is None else tensor + pos


class MultiheadAttention(nn.Cell):
    """Bias-free multi-head attention with `torch.nn.MultiheadAttention` semantics.

    Args:
        embed_dim: token width E.
        num_heads: heads; E must divide evenly.
        dropout_rate: dropout on the attention weights (training only).

    Inputs are (L, B, E) queries and (S, B, E) keys/values; the output is (L, B, E).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout_rate: float = 0.0, in_proj_init=None):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = 1.0 / math.sqrt(self.head_dim)
        init = in_proj_init if in_proj_init is not None else XavierUniform()
        self.in_proj_weight = Parameter(initializer(init, (3 * embed_dim, embed_dim), ms.float32),
                                        name="in_proj_weight")
        self.out_proj = nn.Dense(embed_dim, embed_dim, has_bias=False)
        self.attn_dropout = compat.dropout(dropout_rate)
        self.scores = ops.BatchMatMul(transpose_b=True)
        self.weighted_sum = ops.BatchMatMul()
        self.softmax = SoftmaxLastAxis()  # ops.softmax with a faster CPU gradient
        self.cpu_gradients = False  # use it (`ipt_ms.models.cpu_grads.set_cpu_gradients`)
        # batch-1 path: heads come out of the projections already in place (see `_single`);
        # off in exported graphs (`ipt_ms.models.exported_form`), which take any batch
        self.single_image_path = True
        self.per_image_max = 8  # inference: batches up to this size run `_single` per image
        self.free_transposes = True  # inference: mint.permute (`compat.permute`)
        self.project_t = ops.MatMul(transpose_b=True)
        self.unproject_t = ops.MatMul(transpose_a=True, transpose_b=True)
        self.scores_t = ops.BatchMatMul(transpose_a=True)
        self.weighted_sum_t = ops.BatchMatMul(transpose_b=True)

    def _softmax(self, scores):
        return self.softmax(scores) if self.cpu_gradients else ops.softmax(scores, axis=-1)

    def _split_heads(self, x2d, length: int):
        # (L*B, E) rows ordered l*B + b  ->  (B*H, L, head_dim), torch's head layout
        x = x2d.reshape((length, -1, self.head_dim))
        return compat.permute(x, (1, 0, 2), self.free_transposes and not self.training)

    def _single(self, query, key, value, w_q, w_k, w_v):
        """One image: the same attention without moving any activation.

        Projected transposed, W @ x^T (E, L) is already (heads, head_dim, L) in memory,
        so scores, softmax and the weighted sum run on it and the output projection takes
        (heads * head_dim, L) back with a transposed matmul. The batched path needs four
        transposes per attention, and MindSpore's CPU Transpose is slow and (in Graph mode)
        keeps its input allocated until the whole graph has run.
        """
        L, E = query.shape[0], query.shape[-1]
        H, d = self.num_heads, self.head_dim
        q_t = (self.project_t(w_q, query.reshape((L, E))) * self.scaling).reshape((H, d, L))
        k_t = self.project_t(w_k, key.reshape((-1, E))).reshape((H, d, -1))
        v_t = self.project_t(w_v, value.reshape((-1, E))).reshape((H, d, -1))
        attn = self.attn_dropout(self._softmax(self.scores_t(q_t, k_t)))  # (H, L, S)
        out_t = self.weighted_sum_t(v_t, attn).reshape((E, L))
        return self.unproject_t(out_t, self.out_proj.weight)  # (L, E)

    def _per_image(self, query, key, value, w_q, w_k, w_v):
        """A few images in inference: `_single` on each one. Cutting the images out of the
        (L, B, E) layout and stacking the results back costs two copies per input and output,
        against the batched path's four head transposes, which `mint.permute` turns into
        hidden copies (batch 8, full model, AMD EPYC: 0.67 s per tile in one call, 0.59 s in
        eight single-tile calls; docs/runtime.md)."""
        images = zip(ops.unstack(query, 1), ops.unstack(key, 1), ops.unstack(value, 1))
        return ops.stack([self._single(q, k, v, w_q, w_k, w_v) for q, k, v in images], 1)

    def construct(self, query, key, value):
        L, B, E = query.shape
        S = key.shape[0]
        w_q, w_k, w_v = ops.split(self.in_proj_weight, E, axis=0)
        if self.single_image_path and B == 1 and key.shape[1] == 1:  # static in Graph mode
            return self._single(query, key, value, w_q, w_k, w_v).reshape((L, 1, E))
        if self.single_image_path and not self.training and 1 < B <= self.per_image_max:
            return self._per_image(query, key, value, w_q, w_k, w_v)
        q = ops.dense(query.reshape((-1, E)), w_q)
        k = ops.dense(key.reshape((-1, E)), w_k)
        v = ops.dense(value.reshape((-1, E)), w_v)
        q = self._split_heads(q * self.scaling, L)
        k = self._split_heads(k, S)
        v = self._split_heads(v, S)
        attn = self._softmax(self.scores(q, k))
        attn = self.attn_dropout(attn)
        out = self.weighted_sum(attn, v)  # (B*H, L, head_dim)
        out = compat.permute(out, (1, 0, 2), self.free_transposes and not self.training).reshape((-1, E))
        return self.out_proj(out).reshape((L, -1, E))


class _FeedForward(nn.Cell):
    """linear1 -> ReLU -> dropout -> linear2, on the attribute names of the official layer."""

    def _ffn(self, x):
        return compat.dense_2d(self.linear2, self.dropout(ops.relu(compat.dense_2d(self.linear1, x))))


class TransformerEncoderLayer(_FeedForward):
    """Pre-norm encoder layer; `pos` (if any) is added to queries and keys only."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout_rate: float,
                 use_norm: bool, eps: float):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout_rate, in_proj_init=HeUniform(math.sqrt(5)))
        self.linear1 = nn.Dense(d_model, dim_feedforward)
        self.dropout = compat.dropout(dropout_rate)
        self.linear2 = nn.Dense(dim_feedforward, d_model)
        self.norm1 = compat.layer_norm(d_model, eps, use_norm)
        self.norm2 = compat.layer_norm(d_model, eps, use_norm)
        self.dropout1 = compat.dropout(dropout_rate)
        self.dropout2 = compat.dropout(dropout_rate)

    def construct(self, src, pos=None):
        src2 = self.norm1(src)
        q = with_pos_embed(src2, pos)
        src = src + self.dropout1(self.self_attn(q, q, src2))
        src = src + self.dropout2(self._ffn(self.norm2(src)))
        return src


class TransformerDecoderLayer(_FeedForward):
    """Pre-norm decoder layer: self-attention, cross-attention over `memory`, FFN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout_rate: float,
                 use_norm: bool, eps: float):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout_rate)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout_rate)
        self.linear1 = nn.Dense(d_model, dim_feedforward)
        self.dropout = compat.dropout(dropout_rate)
        self.linear2 = nn.Dense(dim_feedforward, d_model)
        self.norm1 = compat.layer_norm(d_model, eps, use_norm)
        self.norm2 = compat.layer_norm(d_model, eps, use_norm)
        self.norm3 = compat.layer_norm(d_model, eps, use_norm)
        self.dropout1 = compat.dropout(dropout_rate)
        self.dropout2 = compat.dropout(dropout_rate)
        self.dropout3 = compat.dropout(dropout_rate)

    def construct(self, tgt, memory, pos=None, query_pos=None):
        tgt2 = self.norm1(tgt)
        q = with_pos_embed(tgt2, query_pos)
        tgt = tgt + self.dropout1(self.self_attn(q, q, tgt2))
        tgt2 = self.norm2(tgt)
        tgt2 = self.multihead_attn(with_pos_embed(tgt2, query_pos), with_pos_embed(memory, pos), memory)
        tgt = tgt + self.dropout2(tgt2)
        tgt = tgt + self.dropout3(self._ffn(self.norm3(tgt)))
        return tgt


class TransformerEncoder(nn.Cell):
    """A stack of encoder layers; optionally returns every layer's output."""

    def __init__(self, layers: list):
        super().__init__()
        self.layers = nn.CellList(layers)

    def construct(self, src, pos=None, return_intermediate: bool = False, given=None, first: int = 0):
        """`given` (with return_intermediate): values computed elsewhere, given[first + i] standing
        for layer i's output; layer i > 0 then reads given[first + i - 1] instead of the live
        value (see `IPT.construct`). Graph mode wants constant indices, not tuple slices."""
        intermediate = ()
        for i, layer in enumerate(self.layers):
            src = layer(src if given is None or i == 0 else given[first + i - 1], pos)
            if return_intermediate:
                intermediate = intermediate + (src,)
        if return_intermediate:
            return src, intermediate
        return src


class TransformerDecoder(nn.Cell):
    """A stack of decoder layers; optionally returns every layer's output."""

    def __init__(self, layers: list):
        super().__init__()
        self.layers = nn.CellList(layers)

    def construct(self, tgt, memory, pos=None, query_pos=None, return_intermediate: bool = False, given=None,
                  first: int = 0):
        """`given`, `first`: as in `TransformerEncoder.construct`."""
        intermediate = ()
        for i, layer in enumerate(self.layers):
            tgt = layer(tgt if given is None or i == 0 else given[first + i - 1], memory, pos, query_pos)
            if return_intermediate:
                intermediate = intermediate + (tgt,)
        if return_intermediate:
            return tgt, intermediate
        return tgt


class LearnedPositionalEncoding(nn.Cell):
    """One learned embedding per token position (`pe`, as in the official model)."""

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.pe = nn.Embedding(num_positions, embedding_dim, embedding_table=Normal(1.0))

    def construct(self):
        table = self.pe.embedding_table
        return table.reshape((table.shape[0], 1, table.shape[1]))  # (L, 1, E): broadcasts over batch


class VisionTransformer(nn.Cell):
    """The shared IPT body: patch tokens -> encoder -> task-queried decoder -> patches.

    Input and output are (B, n_feats, patch_size, patch_size) feature maps.
    """

    def __init__(self, spec: IPTSpec):
        super().__init__()
        E, Hd, L = spec.embedding_dim, spec.hidden_dim, spec.num_patches
        self.patch_dim = spec.patch_dim
        self.embedding_dim = E
        self.num_patches = L
        self.expand_query_pos = True  # see construct; `ipt_ms.models.exported_form` turns it off
        self.free_transposes = True  # inference: mint.permute (`compat.permute`)
        self.use_mlp = not spec.no_mlp
        self.use_pos = not spec.no_pos
        self.pos_every = spec.pos_every
        if self.use_mlp:
            self.linear_encoding = nn.Dense(E, E)
            self.mlp_head = nn.SequentialCell([
                nn.Dense(E, Hd), compat.dropout(spec.dropout_rate), nn.ReLU(),
                nn.Dense(Hd, E), compat.dropout(spec.dropout_rate),
            ])
            self.query_embed = nn.Embedding(spec.num_queries, E * L, embedding_table=Normal(1.0))
        layer_args = (E, spec.num_heads, Hd, spec.dropout_rate, not spec.no_norm, spec.layer_norm_eps)
        self.encoder = TransformerEncoder([TransformerEncoderLayer(*layer_args) for _ in range(spec.num_layers)])
        self.decoder = TransformerDecoder([TransformerDecoderLayer(*layer_args) for _ in range(spec.num_layers)])
        if self.use_pos:
            self.position_encoding = LearnedPositionalEncoding(L, E)
        self.dropout_layer1 = compat.dropout(spec.dropout_rate)
        self.stage_count = spec.body_stage_count  # stages construct reports
        if spec.no_norm:  # the official model re-initialises every Linear when LayerNorm is off
            for _, cell in self.cells_and_names():
                if isinstance(cell, nn.Dense):
                    cell.weight.set_data(initializer(Normal(1.0 / cell.weight.shape[1]), cell.weight.shape))

    def construct(self, x, task_idx: int = 0, with_stages: bool = False, given=None, first: int = 0):
        """Returns (out, features, stages): out (B, C, H, W); features (B, L, E) after
        mlp_head (what the contrastive loss uses); stages a tuple (empty unless asked).
        `given` (with `with_stages`): every stage as computed elsewhere, the body's first at
        given[first]; each stage then reads its input from there (see `IPT.construct`)."""
        B, C, H, W = x.shape
        stages = ()
        tokens = patch_unfold(x, self.patch_dim, self.free_transposes and not self.training)
        query_pos = None
        n_layers = len(self.encoder.layers)
        first_layer = first + (1 if self.use_mlp else 0)  # index of encoder.0 in `given`
        if self.use_mlp:
            tokens = self.dropout_layer1(compat.dense_2d(self.linear_encoding, tokens)) + tokens
            query = self.query_embed.embedding_table[task_idx]
            query_pos = query.reshape((self.num_patches, 1, self.embedding_dim))
            if self.expand_query_pos and B != 1:  # flag first: with a dynamic batch, B is not a constant
                # broadcast over the batch once (adding zeros: exact) instead of in each of the
                # decoder's 2 x num_layers additions, where MindSpore's CPU broadcasting add is
                # ~4x slower than a plain one. Off in exported graphs (`exported_form`): the ONNX
                # exporter fixes zeros_like's shape to the traced batch.
                query_pos = query_pos + ops.zeros_like(tokens)
            if with_stages:
                stages = stages + (tokens,)
            if given is not None:
                tokens = given[first]
        pos = self.position_encoding() if self.use_pos else None
        if self.pos_every:
            enc_pos, dec_pos, src = pos, pos, tokens
        else:
            enc_pos, dec_pos, src = None, None, with_pos_embed(tokens, pos)
        if with_stages:
            memory, enc_stages = self.encoder(src, enc_pos, True, given, first_layer)
            if given is not None:
                memory = given[first_layer + n_layers - 1]
            out, dec_stages = self.decoder(memory, memory, dec_pos, query_pos, True, given, first_layer + n_layers)
            if given is not None:
                out = given[first_layer + 2 * n_layers - 1]
            stages = stages + enc_stages + dec_stages
        else:
            memory = self.encoder(src, enc_pos)
            out = self.decoder(memory, memory, dec_pos, query_pos)
        if self.use_mlp:
            out = compat.dense_2d(self.mlp_head, out) + out
            if with_stages:
                stages = stages + (out,)
            if given is not None:
                out = given[first_layer + 2 * n_layers]
        features = compat.permute(out, (1, 0, 2), self.free_transposes and not self.training)
        out = patch_fold(out, self.patch_dim, H, W, self.free_transposes and not self.training)
        if with_stages:
            stages = stages + (out,)
        return out, features, stages
