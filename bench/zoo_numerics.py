"""What the MindSpore model zoo's float16 numerics do to IPT's output and PSNR (docs/evaluation.md).

The zoo network (mindspore-ai/models `research/cv/IPT`, also mindediting's) computes with
the same weights as ipt-ms but not the same arithmetic: heads, body and tails run in
float16 (`to_float`), its LayerNorm casts to float32 and uses MindSpore's default
epsilon 1e-7 (ipt-ms and the official PyTorch model: 1e-5), attention scores are scaled
by 1/sqrt(head_dim) held as a float16 tensor and go through a float32 softmax whose
probabilities are cast back to float16, and the output is float16. The mean is
subtracted and added in float32 outside the network.

`ZooNumericsPredictor` restates that forward pass with MindSpore ops on an official-keyed
state, in one of four arithmetics (float16 or float32, eps 1e-7 or 1e-5); in float32 with
eps 1e-5 it computes what `ipt_ms.models.IPT` computes (checked below and in
tests/core/test_zoo_numerics.py), so the differences it measures are the arithmetic's
alone. It is a measurement tool, not a second model: ipt-ms always runs in float32.

Usage:
    .venv/bin/python bench/zoo_numerics.py                       # full-size x2, seeded weights, 5 photos
    .venv/bin/python bench/zoo_numerics.py --weights W --photos 3 --size 96 --json out.json
    .venv/bin/python bench/zoo_numerics.py --preset tiny --photos 1 --size 48   # smoke

PSNR follows `ipt-ms eval` (Y channel, shave = scale, quantised output) with the zoo's
tiling (`--protocol zoo`). With seeded (untrained) weights the absolute PSNR means
nothing; the differences between arithmetics are what is reported.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ipt_ms  # noqa: E402,F401  (oneDNN / GLOG environment before MindSpore loads)
from ipt_ms.spec import IPTSpec  # noqa: E402

BASELINE = "ipt-ms (fp32, eps 1e-5)"
VARIANTS = {  # name -> (float16 compute, LayerNorm epsilon); the baseline runs ipt_ms.models.IPT itself
    BASELINE: (False, 1e-5),
    "restated, fp32, eps 1e-5": (False, 1e-5),  # the float32 noise floor: same arithmetic, other op order
    "fp32, eps 1e-7": (False, 1e-7),
    "fp16, eps 1e-5": (True, 1e-5),
    "zoo (fp16, eps 1e-7)": (True, 1e-7),
}


class ZooNumericsPredictor:
    """Tiles (N, C, P, P) float32 in [0, 255] -> outputs, computed with the zoo's arithmetic.

    Args:
        spec: architecture (the official options: MLP, LayerNorm, position embedding once).
        state: official-keyed float32 arrays.
        task: task name or index.
        float16: compute convolutions, dense layers and the body in float16 (the zoo) or float32.
        eps: LayerNorm epsilon (zoo 1e-7, ipt-ms 1e-5).
    """

    framework = "mindspore-zoo-numerics"

    def __init__(self, spec: IPTSpec, state: dict[str, np.ndarray], task: str | int, *, float16: bool = True,
                 eps: float = 1e-7, batch_size: int = 16):
        import mindspore as ms

        if spec.no_mlp or spec.no_norm or spec.no_pos or spec.pos_every:
            raise ValueError("the zoo-numerics forward covers the official options only")
        self.spec, self.task_idx, self.eps = spec, spec.task_index(task), eps
        self.scale = spec.scales[self.task_idx]
        self.batch_size = batch_size
        self.dtype = ms.float16 if float16 else ms.float32
        self.mean = (spec.rgb_range * np.asarray(spec.rgb_mean, np.float64)).reshape(1, -1, 1, 1)
        t = self.task_idx
        keep = [k for k in state if k.startswith((f"head.{t}.", f"tail.{t}.", "body."))]
        self.p = {}
        for key in keep:
            if key.endswith("position_ids"):
                continue
            value = state[key]
            if key == "body.query_embed.weight":
                value = value[t]
            fp32 = ".norm" in key  # LayerNorm parameters stay float32, as in the zoo's wrapper
            self.p[key] = ms.Tensor(np.ascontiguousarray(value), ms.float32 if fp32 else self.dtype)
        head_dim = spec.embedding_dim // spec.num_heads
        self.score_scale = ms.Tensor(np.array([1.0 / math.sqrt(head_dim)], np.float32), self.dtype)

    # -------------------------------------------------------------------- pieces
    def _conv(self, x, prefix: str):
        from mindspore import ops

        w = self.p[prefix + ".weight"]
        y = ops.conv2d(x, w, pad_mode="pad", padding=w.shape[-1] // 2)
        return y + self.p[prefix + ".bias"].reshape((1, -1, 1, 1))

    def _dense(self, x2d, prefix: str, bias: bool = True):
        from mindspore import ops

        return ops.dense(x2d, self.p[prefix + ".weight"], self.p[prefix + ".bias"] if bias else None)

    def _norm(self, x, prefix: str):
        """The zoo's LayerPreprocess: float32 LayerNorm with its epsilon, cast back."""
        import mindspore as ms
        from mindspore import ops

        x32 = x.astype(ms.float32)
        mean = x32.mean(axis=-1, keep_dims=True)
        var = ops.square(x32 - mean).mean(axis=-1, keep_dims=True)
        y = (x32 - mean) / ops.sqrt(var + self.eps) * self.p[prefix + ".weight"] + self.p[prefix + ".bias"]
        return y.astype(self.dtype)

    def _attention(self, q, k, v, prefix: str):
        """(L, B, E) inputs; scores scaled after QK^T by a float16 constant, float32 softmax."""
        import mindspore as ms
        from mindspore import ops

        L, B, E = q.shape
        S, heads = k.shape[0], self.spec.num_heads
        hd = E // heads
        w_q, w_k, w_v = ops.split(self.p[prefix + ".in_proj_weight"], E, axis=0)

        def split_heads(x2d, length):
            return ops.transpose(x2d.reshape((length, B * heads, hd)), (1, 0, 2))

        qh = split_heads(ops.dense(q.reshape((-1, E)), w_q), L)
        kh = split_heads(ops.dense(k.reshape((-1, E)), w_k), S)
        vh = split_heads(ops.dense(v.reshape((-1, E)), w_v), S)
        scores = ops.BatchMatMul(transpose_b=True)(qh, kh) * self.score_scale
        probs = ops.softmax(scores.astype(ms.float32), axis=-1).astype(self.dtype)
        out = ops.transpose(ops.BatchMatMul()(probs, vh), (1, 0, 2)).reshape((-1, E))
        return ops.dense(out, self.p[prefix + ".out_proj.weight"]).reshape((L, B, E))

    def _ffn(self, x, prefix: str):
        from mindspore import ops

        L, B, E = x.shape
        h = ops.relu(self._dense(x.reshape((-1, E)), prefix + ".linear1"))
        return self._dense(h, prefix + ".linear2").reshape((L, B, E))

    def _body(self, x):
        from mindspore import ops

        from ipt_ms.models.transformer import patch_fold, patch_unfold

        B, C, H, W = x.shape
        spec = self.spec
        L, E = spec.num_patches, spec.embedding_dim
        tokens = patch_unfold(x, spec.patch_dim)
        tokens = self._dense(tokens.reshape((-1, E)), "body.linear_encoding").reshape((L, B, E)) + tokens
        query_pos = self.p["body.query_embed.weight"].reshape((L, 1, E))
        src = tokens + self.p["body.position_encoding.pe.weight"].reshape((L, 1, E))
        for j in range(spec.num_layers):
            pre = f"body.encoder.layers.{j}"
            src2 = self._norm(src, pre + ".norm1")
            src = src + self._attention(src2, src2, src2, pre + ".self_attn")
            src = src + self._ffn(self._norm(src, pre + ".norm2"), pre)
        memory, tgt = src, src
        for j in range(spec.num_layers):
            pre = f"body.decoder.layers.{j}"
            tgt2 = self._norm(tgt, pre + ".norm1")
            q = tgt2 + query_pos
            tgt = tgt + self._attention(q, q, tgt2, pre + ".self_attn")
            tgt2 = self._norm(tgt, pre + ".norm2")
            tgt = tgt + self._attention(tgt2 + query_pos, memory, memory, pre + ".multihead_attn")
            tgt = tgt + self._ffn(self._norm(tgt, pre + ".norm3"), pre)
        h = ops.relu(self._dense(tgt.reshape((-1, E)), "body.mlp_head.0"))
        out = self._dense(h, "body.mlp_head.3").reshape((L, B, E)) + tgt
        return patch_fold(out, spec.patch_dim, H, W)

    def forward(self, tiles: np.ndarray) -> np.ndarray:
        import mindspore as ms
        from mindspore import ops

        t = self.task_idx
        x = ms.Tensor((tiles.astype(np.float64) - self.mean).astype(np.float32)).astype(self.dtype)
        x = self._conv(x, f"head.{t}.0")
        for block in (1, 2):
            pre = f"head.{t}.{block}.body"
            x = self._conv(ops.relu(self._conv(x, pre + ".0")), pre + ".2") + x
        res = self._body(x) + x
        for k, r in enumerate(self.spec.upsampler_factors(self.scale)):
            res = self._conv(res, f"tail.{t}.0.{2 * k}")
            n, c, h, w = res.shape
            res = ops.transpose(res.reshape((n, c // (r * r), r, r, h, w)), (0, 1, 4, 2, 5, 3))
            res = res.reshape((n, c // (r * r), h * r, w * r))
        out = self._conv(res, f"tail.{t}.1").astype(ms.float32).asnumpy()
        return (out.astype(np.float64) + self.mean).astype(np.float32)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        from ipt_ms.inference import run_batches

        return run_batches(tiles, self.forward, step=self.batch_size, scale=self.scale)


# ------------------------------------------------------------------------------- measurement
def _photo_pair(name: str, size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR): a size*scale HR crop of a scikit-image photo and its MATLAB-bicubic LR."""
    from ipt_ms.data.imresize import imresize
    from ipt_ms.eval.photos import sample_photo

    hr = sample_photo(name, size * scale, size * scale)
    return imresize(hr, 1.0 / scale), hr


def measure(spec: IPTSpec, state: dict[str, np.ndarray], task: str, photos: list[str], size: int,
            protocol: str = "zoo") -> dict:
    """Per photo and arithmetic: PSNR against HR, and PSNR / max |diff| against the float32 output."""
    from ipt_ms.inference import MindSporePredictor, build_model, restore_array
    from ipt_ms.metrics import psnr, quantize

    predictors = {name: ZooNumericsPredictor(spec, state, task, float16=f16, eps=eps)
                  for name, (f16, eps) in VARIANTS.items() if name != BASELINE}
    predictors = {BASELINE: MindSporePredictor(build_model(spec, state), spec, task, batch_size=16), **predictors}
    scale = spec.scale_of(task)
    rows = []
    for photo in photos:
        lr, hr = _photo_pair(photo, size, scale)
        outputs, row = {}, {"photo": photo, "lr_size": list(lr.shape[:2])}
        for name, predictor in predictors.items():
            start = time.perf_counter()
            outputs[name] = restore_array(predictor, lr, scale=scale, patch=spec.patch_size, protocol=protocol)
            row[name] = {"psnr": psnr(outputs[name], hr, scale), "seconds": time.perf_counter() - start,
                         "finite": bool(np.isfinite(outputs[name]).all())}
        reference = outputs[BASELINE]
        for name, out in outputs.items():
            row[name]["max_abs_vs_fp32"] = float(np.abs(out - reference).max())
            row[name]["psnr_vs_fp32"] = psnr(out, quantize(reference), scale)
            row[name]["dpsnr"] = row[name]["psnr"] - row[BASELINE]["psnr"]
        rows.append(row)
        print(f"{photo}: " + "; ".join(f"{n} {row[n]['psnr']:.3f} dB (d {row[n]['dpsnr']:+.4f})" for n in VARIANTS),
              flush=True)
    return {"task": task, "protocol": protocol, "size": size, "photos": rows,
            "mean_dpsnr": {n: float(np.mean([r[n]["dpsnr"] for r in rows])) for n in VARIANTS},
            "max_abs_dpsnr": {n: float(np.max([abs(r[n]["dpsnr"]) for r in rows])) for n in VARIANTS},
            "mean_psnr_vs_fp32": {n: float(np.mean([r[n]["psnr_vs_fp32"] for r in rows])) for n in VARIANTS}}


def check_against_network(spec: IPTSpec, state: dict[str, np.ndarray], task: str, seed: int = 0) -> float:
    """Max relative difference between the float32 / eps 1e-5 restatement and `ipt_ms.models.IPT`."""
    import mindspore as ms

    from ipt_ms.inference import build_model

    x = np.random.default_rng(seed).uniform(0, 255, (2, spec.n_colors, spec.patch_size, spec.patch_size))
    x = x.astype(np.float32)
    ours = build_model(spec, state)(ms.Tensor(x), spec.task_index(task)).asnumpy()
    restated = ZooNumericsPredictor(spec, state, task, float16=False, eps=spec.layer_norm_eps).forward(x)
    return float(np.abs(restated - ours).max() / np.abs(ours).max())


def _markdown(result: dict, spec: IPTSpec, note: str) -> str:
    lines = [f"Task {result['task']}, protocol `{result['protocol']}`, {len(result['photos'])} photos "
             f"(LR {result['size']}x{result['size']}); {note}", "",
             "| arithmetic | mean PSNR (dB) | mean dPSNR vs ipt-ms (dB) | max abs dPSNR (dB) | "
             "PSNR of quantised output vs ipt-ms's (dB) | max abs output diff |", "|---|---|---|---|---|---|"]
    for name in VARIANTS:
        mean_psnr = np.mean([r[name]["psnr"] for r in result["photos"]])
        lines.append(f"| {name} | {mean_psnr:.3f} | {result['mean_dpsnr'][name]:+.4f} | "
                     f"{result['max_abs_dpsnr'][name]:.4f} | {result['mean_psnr_vs_fp32'][name]:.2f} | "
                     f"{max(r[name]['max_abs_vs_fp32'] for r in result['photos']):.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="weights file (default: seeded weights of --preset)")
    parser.add_argument("--preset", default="sr_x2", choices=("sr_x2", "tiny"),
                        help="architecture of the seeded weights (default: the full-size x2 model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="sr_x2")
    parser.add_argument("--photos", type=int, default=5, help="how many scikit-image photos (default 5)")
    parser.add_argument("--size", type=int, default=96, help="LR crop side (default 96)")
    parser.add_argument("--protocol", default="zoo", help="tiling protocol (default zoo)")
    parser.add_argument("--json", default=None, help="write the full results here")
    args = parser.parse_args(argv)

    from ipt_ms.eval.photos import SAMPLE_PHOTOS
    from ipt_ms.runtime import configure

    configure("cpu", "pynative")
    if args.weights:
        from ipt_ms.convert.weights import load_weights

        spec, state = load_weights(args.weights)
        spec = spec.name_placeholder_task(args.task)
        note = f"weights {args.weights}"
    else:
        from parity.seeded import seeded_state

        spec = IPTSpec.official("sr_x2") if args.preset == "sr_x2" else IPTSpec.tiny()
        state = seeded_state(spec, seed=args.seed)
        note = f"seeded (untrained) weights, seed {args.seed}, official initialisation"
    check = check_against_network(spec, state, args.task)
    print(f"fp32/eps-1e-5 restatement vs ipt_ms.models.IPT: max rel diff {check:.2e}", flush=True)
    result = measure(spec, state, args.task, list(SAMPLE_PHOTOS[:args.photos]), args.size, args.protocol)
    result["restatement_check_max_rel"] = check
    print(_markdown(result, spec, note))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
