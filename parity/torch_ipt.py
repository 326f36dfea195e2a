"""PyTorch twin of IPT whose `state_dict()` is key-for-key the official one.

Built from the same `IPTSpec` as the MindSpore network, with the official module tree
(huawei-noah/Pretrained-IPT `model/ipt.py`, `model/common.py`), so official checkpoints
(IPT_sr2.pt, IPT_pretrain.pt, ...) load with `strict=True`. Attention is PyTorch's own
`nn.MultiheadAttention(bias=False)`, called the way the official layers call it, so this
model computes what the official one computes. Like the MindSpore network it takes the
task index as a forward argument and can report every intermediate stage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ipt_ms.spec import IPTSpec


def default_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True)


class MeanShift(nn.Conv2d):
    def __init__(self, rgb_range: float, rgb_mean: tuple[float, ...], sign: int):
        channels = len(rgb_mean)
        super().__init__(channels, channels, kernel_size=1)
        self.weight.data = torch.eye(channels).view(channels, channels, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean, dtype=torch.float32)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, kernel_size: int):
        super().__init__()
        self.body = nn.Sequential(default_conv(n_feats, n_feats, kernel_size), nn.ReLU(True),
                                  default_conv(n_feats, n_feats, kernel_size))

    def forward(self, x):
        return self.body(x) + x


def make_upsampler(factors: list[int], n_feats: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for r in factors:
        layers += [default_conv(n_feats, r * r * n_feats, 3), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


def with_pos_embed(tensor, pos):
    return tensor if pos is None else tensor + pos


class TransformerEncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout, use_norm, eps):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=False)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=eps) if use_norm else nn.Identity()
        self.norm2 = nn.LayerNorm(d_model, eps=eps) if use_norm else nn.Identity()
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.self_attn.in_proj_weight, a=math.sqrt(5))

    def forward(self, src, pos=None):
        src2 = self.norm1(src)
        q = k = with_pos_embed(src2, pos)
        src = src + self.dropout1(self.self_attn(q, k, src2)[0])
        src2 = self.linear2(self.dropout(F.relu(self.linear1(self.norm2(src)))))
        return src + self.dropout2(src2)


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout, use_norm, eps):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=False)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=False)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=eps) if use_norm else nn.Identity()
        self.norm2 = nn.LayerNorm(d_model, eps=eps) if use_norm else nn.Identity()
        self.norm3 = nn.LayerNorm(d_model, eps=eps) if use_norm else nn.Identity()
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, pos=None, query_pos=None):
        tgt2 = self.norm1(tgt)
        q = k = with_pos_embed(tgt2, query_pos)
        tgt = tgt + self.dropout1(self.self_attn(q, k, value=tgt2)[0])
        tgt2 = self.norm2(tgt)
        tgt2 = self.multihead_attn(query=with_pos_embed(tgt2, query_pos), key=with_pos_embed(memory, pos),
                                   value=memory)[0]
        tgt = tgt + self.dropout2(tgt2)
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tgt)))))
        return tgt + self.dropout3(tgt2)


class _Stack(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.pe = nn.Embedding(num_positions, embedding_dim)
        self.register_buffer("position_ids", torch.arange(num_positions).expand((1, -1)))

    def forward(self):
        return self.pe(self.position_ids).transpose(0, 1)  # (L, 1, E)


class VisionTransformer(nn.Module):
    def __init__(self, spec: IPTSpec):
        super().__init__()
        E, Hd, L = spec.embedding_dim, spec.hidden_dim, spec.num_patches
        self.spec = spec
        if not spec.no_mlp:
            self.linear_encoding = nn.Linear(E, E)
            self.mlp_head = nn.Sequential(nn.Linear(E, Hd), nn.Dropout(spec.dropout_rate), nn.ReLU(),
                                          nn.Linear(Hd, E), nn.Dropout(spec.dropout_rate))
            self.query_embed = nn.Embedding(spec.num_queries, E * L)
        args = (E, spec.num_heads, Hd, spec.dropout_rate, not spec.no_norm, spec.layer_norm_eps)
        self.encoder = _Stack([TransformerEncoderLayer(*args) for _ in range(spec.num_layers)])
        self.decoder = _Stack([TransformerDecoderLayer(*args) for _ in range(spec.num_layers)])
        if not spec.no_pos:
            self.position_encoding = LearnedPositionalEncoding(L, E)
        self.dropout_layer1 = nn.Dropout(spec.dropout_rate)
        if spec.no_norm:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=1 / m.weight.size(1))

    def forward(self, x, task_idx: int = 0, with_stages: bool = False, given=None):
        """`given`: the body's stages computed elsewhere; each stage then reads its input from
        there (see `TorchIPT.forward`)."""
        spec = self.spec
        B, C, H, W = x.shape
        L = spec.num_layers
        first_layer = 0 if spec.no_mlp else 1  # index of encoder.0 among the body's stages
        stages = []
        tokens = F.unfold(x, spec.patch_dim, stride=spec.patch_dim).permute(2, 0, 1)  # (L, B, E)
        query_pos = None
        if not spec.no_mlp:
            tokens = self.dropout_layer1(self.linear_encoding(tokens)) + tokens
            query_pos = self.query_embed.weight[task_idx].view(-1, 1, spec.embedding_dim).repeat(1, B, 1)
            stages.append(tokens)
            if given is not None:
                tokens = given[0]
        pos = None if spec.no_pos else self.position_encoding()
        if spec.pos_every:
            enc_pos, dec_pos, src = pos, pos, tokens
        else:
            enc_pos, dec_pos, src = None, None, with_pos_embed(tokens, pos)
        for i, layer in enumerate(self.encoder.layers):
            src = layer(src if given is None or i == 0 else given[first_layer + i - 1], pos=enc_pos)
            stages.append(src)
        if given is not None:
            src = given[first_layer + L - 1]
        out = src
        for i, layer in enumerate(self.decoder.layers):
            out = layer(out if given is None or i == 0 else given[first_layer + L + i - 1], src, pos=dec_pos,
                        query_pos=query_pos)
            stages.append(out)
        if given is not None:
            out = given[first_layer + 2 * L - 1]
        if not spec.no_mlp:
            out = self.mlp_head(out) + out
            stages.append(out)
            if given is not None:
                out = given[first_layer + 2 * L]
        features = out.transpose(0, 1)
        out = F.fold(features.transpose(1, 2), (H, W), spec.patch_dim, stride=spec.patch_dim)
        stages.append(out)
        return out, features, (stages if with_stages else [])


class TorchIPT(nn.Module):
    """The official IPT module tree; `forward(x, task_idx)` instead of `set_scale`."""

    def __init__(self, spec: IPTSpec):
        super().__init__()
        self.spec = spec
        self.sub_mean = MeanShift(spec.rgb_range, spec.rgb_mean, sign=-1)
        self.add_mean = MeanShift(spec.rgb_range, spec.rgb_mean, sign=1)
        self.head = nn.ModuleList([
            nn.Sequential(default_conv(spec.n_colors, spec.n_feats, 3), ResBlock(spec.n_feats, 5),
                          ResBlock(spec.n_feats, 5))
            for _ in spec.scales
        ])
        self.body = VisionTransformer(spec)
        self.tail = nn.ModuleList([
            nn.Sequential(make_upsampler(spec.upsampler_factors(s), spec.n_feats),
                          default_conv(spec.n_feats, spec.n_colors, 3))
            for s in spec.scales
        ])

    def forward(self, x, task_idx: int = 0, with_stages: bool = False, with_features: bool = False,
                stage_inputs=None):
        """`stage_inputs`: one value per stage of `spec.stage_names(task_idx)`; each stage then
        reads its input(s) from it instead of from the stage before (layer-by-layer parity)."""
        given = stage_inputs
        x = self.sub_mean(x)
        stages = [x]
        for i, cell in enumerate(self.head[task_idx]):
            x = cell(x if given is None else given[i])
            stages.append(x)
        if given is not None:
            x = given[3]
        n_body = self.spec.body_stage_count
        res, features, body_stages = self.body(x, task_idx, with_stages,
                                               None if given is None else given[4:4 + n_body])
        res = res + x
        stages += body_stages + [res]
        upsampler = self.tail[task_idx][0]
        for k in range(0, len(upsampler), 2):
            res = upsampler[k + 1](upsampler[k](res if given is None else given[4 + n_body + k // 2]))
            stages.append(res)
        depth = len(upsampler) // 2
        out = self.tail[task_idx][1](res if given is None else given[4 + n_body + depth])
        stages.append(out)
        out = self.add_mean(out if given is None else given[5 + n_body + depth])
        stages.append(out)
        result = (out,)
        if with_features:
            result += (features,)
        if with_stages:
            result += (tuple(stages),)
        return result[0] if len(result) == 1 else result


def build_torch_ipt(spec: IPTSpec) -> TorchIPT:
    return TorchIPT(spec)
