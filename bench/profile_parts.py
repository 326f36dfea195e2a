"""Where the inference time goes: head, transformer body and tail timed apart, MindSpore Graph vs PyTorch.

Usage:
    .venv/bin/python bench/profile_parts.py                 # full-size x2 model, batch 1
    .venv/bin/python bench/profile_parts.py --batch 8 --runs 3
    .venv/bin/python bench/profile_parts.py --preset tiny --runs 1    # smoke (CI)

Both networks get the same seeded weights. Each part is compiled (MindSpore Graph) as its own
cell and fed the previous part's output, so the parts add up to one forward pass; inside the
body the encoder and decoder stacks are timed apart too. Prints a Markdown table of warm
medians and the MindSpore / PyTorch time ratio per part (above 1: MindSpore slower). Run on a
quiet machine; nothing is asserted. Assumes the official options (MLP, position embedding
added once, LayerNorm).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ipt_ms  # noqa: E402,F401  (oneDNN / GLOG environment before MindSpore loads)


def _median_time(fn, runs: int) -> tuple[float, float]:
    """(first call, median of `runs` warm calls) in seconds; fn must block until done."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    warm = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


def _mindspore_parts(net, spec, task: int):
    """Graph-compiled cells for the head, encoder, decoder (+ mlp_head, fold) and tail."""
    from mindspore import nn

    from ipt_ms.models import compat
    from ipt_ms.models.transformer import patch_fold, patch_unfold

    body = net.body

    class Head(nn.Cell):
        def construct(self, x):
            return net.head[task](net.sub_mean(x))

    class Encoder(nn.Cell):
        def construct(self, x):
            tokens = patch_unfold(x, body.patch_dim)
            tokens = compat.dense_2d(body.linear_encoding, tokens) + tokens
            return body.encoder(tokens + body.position_encoding())

    class Decoder(nn.Cell):
        def construct(self, memory):
            query = body.query_embed.embedding_table[task].reshape((body.num_patches, 1, body.embedding_dim))
            out = body.decoder(memory, memory, None, query)
            return out

    class Fold(nn.Cell):
        def construct(self, out, head_out):
            out = compat.dense_2d(body.mlp_head, out) + out
            return patch_fold(out, body.patch_dim, spec.patch_size, spec.patch_size) + head_out

    class Tail(nn.Cell):
        def construct(self, res):
            return net.add_mean(net.tail[task](res))

    return Head(), Encoder(), Decoder(), Fold(), Tail()


def _torch_parts(net, task: int):
    import torch.nn.functional as F

    body = net.body
    P = body.spec.patch_dim

    def head(x):
        x = net.sub_mean(x)
        return net.head[task](x)

    def encoder(x):
        tokens = F.unfold(x, P, stride=P).permute(2, 0, 1)
        tokens = body.linear_encoding(tokens) + tokens
        src = tokens + body.position_encoding()
        for layer in body.encoder.layers:
            src = layer(src)
        return src

    def decoder(memory):
        query = body.query_embed.weight[task].view(-1, 1, body.spec.embedding_dim).repeat(1, memory.shape[1], 1)
        out = memory
        for layer in body.decoder.layers:
            out = layer(out, memory, query_pos=query)
        return out

    def fold(out, head_out):
        out = body.mlp_head(out) + out
        size = head_out.shape[-1]
        return F.fold(out.permute(1, 2, 0), size, P, stride=P) + head_out

    def tail(res):
        return net.add_mean(net.tail[task](res))

    return head, encoder, decoder, fold, tail


def profile(preset: str, batch: int, runs: int, task: int = 0, seed: int = 0) -> list[dict]:
    import mindspore as ms
    import numpy as np
    import torch

    from ipt_ms.inference import build_model
    from ipt_ms.runtime import configure
    from ipt_ms.spec import IPTSpec
    from parity.seeded import seeded_state
    from parity.torch_runner import build_torch_model

    spec = getattr(IPTSpec, preset)()
    state = seeded_state(spec, seed)
    tnet = build_torch_model(spec, state)
    configure("cpu", "graph")
    mnet = build_model(spec, state)

    shape = (batch, spec.n_colors, spec.patch_size, spec.patch_size)
    x = np.random.default_rng(seed).uniform(0, spec.rgb_range, shape).astype(np.float32)
    names = ("head (mean shift, conv, 2 ResBlocks)", f"encoder ({spec.num_layers} layers, incl. linear_encoding)",
             f"decoder ({spec.num_layers} layers)", "mlp_head, fold, body residual", "tail (upsampler, conv, mean)")
    ms_parts, torch_parts = _mindspore_parts(mnet, spec, task), _torch_parts(tnet, task)

    rows = []
    ms_in, torch_in = (ms.Tensor(x),), (torch.from_numpy(x),)
    ms_head = torch_head = None
    with torch.inference_mode():
        for i, (name, ms_part, torch_part) in enumerate(zip(names, ms_parts, torch_parts)):
            if i == 3:
                ms_in, torch_in = ms_in + (ms_head,), torch_in + (torch_head,)
            ms_out = ms_part(*ms_in)
            torch_out = torch_part(*torch_in)
            ms_first, ms_warm = _median_time(lambda p=ms_part, a=ms_in: p(*a).asnumpy(), runs)
            torch_first, torch_warm = _median_time(lambda p=torch_part, a=torch_in: p(*a), runs)
            diff = float(np.abs(ms_out.asnumpy() - torch_out.numpy()).max() / (np.abs(torch_out.numpy()).max() + 1e-12))
            rows.append(dict(part=name, ms_first=ms_first, ms_warm=ms_warm, torch_warm=torch_warm,
                             torch_first=torch_first, ratio=ms_warm / torch_warm, rel_err=diff))
            if i == 0:
                ms_head, torch_head = ms_out, torch_out
            ms_in, torch_in = (ms_out,), (torch_out,)
    full = mnet(ms.Tensor(x), task).asnumpy()  # the chained parts must be the whole network
    rows[-1]["vs_full_network"] = float(np.abs(ms_out.asnumpy() - full).max() / (np.abs(full).max() + 1e-12))
    return rows


def render(rows: list[dict], preset: str, batch: int, runs: int) -> str:
    lines = [f"Model preset `{preset}`, batch {batch}, median of {runs} warm calls per part "
             "(MindSpore Graph, each part compiled on its own; PyTorch eager, inference_mode).", "",
             "| part | MindSpore (s) | PyTorch (s) | MindSpore / PyTorch | share of MindSpore | max rel diff |",
             "|---|---:|---:|---:|---:|---:|"]
    ms_total = sum(r["ms_warm"] for r in rows)
    torch_total = sum(r["torch_warm"] for r in rows)
    for r in rows:
        lines.append(f"| {r['part']} | {r['ms_warm']:.4f} | {r['torch_warm']:.4f} | {r['ratio']:.2f} | "
                     f"{100 * r['ms_warm'] / ms_total:.0f}% | {r['rel_err']:.1e} |")
    lines.append(f"| **sum** | {ms_total:.4f} | {torch_total:.4f} | {ms_total / torch_total:.2f} | 100% | |")
    lines += ["", f"Chained MindSpore parts vs the whole MindSpore network: max rel diff "
              f"{rows[-1]['vs_full_network']:.1e}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="official", choices=("official", "pretrain", "tiny"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=7, help="warm calls per part (median)")
    args = parser.parse_args(argv)
    rows = profile(args.preset, args.batch, args.runs)
    print(render(rows, args.preset, args.batch, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
