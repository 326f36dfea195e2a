"""`ipt-ms export`: ONNX (from MindSpore or the PyTorch twin) or MindIR, one file per task."""

from __future__ import annotations

from ipt_ms.cli._common import add_architecture_overrides, add_quiet_arg, architecture_overrides, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export to ONNX (MindSpore or PyTorch source) or MindIR",
        description="Export IPT for deployment: ONNX from MindSpore (mindspore.onnx.export, opset 11 natively) "
                    "or from the PyTorch twin (torch.onnx dynamo exporter, opset >= 18), or MindIR for MindSpore "
                    "Lite / serving. One file per task, dynamic batch; the architecture and task are stored in "
                    "the file, so `--framework onnx --weights FILE` needs nothing else. ONNX files are checked "
                    "with onnx.checker before they are written.")
    p.add_argument("--weights", required=True, help=".ckpt, .pt/.pth or .safetensors")
    p.add_argument("--format", dest="fmt", default="onnx", choices=("onnx", "mindir"), help="default onnx")
    p.add_argument("--task", default="all",
                   help="task name or index, or 'all' for one file per task (default all)")
    p.add_argument("-o", "--output", required=True,
                   help="output file (.onnx/.mindir; with several tasks _<task> is added before the suffix) "
                        "or a folder (<weights stem>_<task>.<format> inside)")
    p.add_argument("--source", default="mindspore", choices=("mindspore", "torch"),
                   help="network to export from (default mindspore; torch = the PyTorch twin, ONNX only)")
    p.add_argument("--opset", type=positive_int, default=None,
                   help="ONNX opset (default: 11 from MindSpore, converted with onnx.version_converter when "
                        "another is asked; 18 from PyTorch, the minimum there)")
    p.add_argument("--with-stages", action="store_true",
                   help="also output every parity stage as 'stage/<name>' (for `ipt-ms parity --onnx`)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="auto", help="MindSpore device used while tracing (default: auto)")
    add_architecture_overrides(p)
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ipt_ms.errors import sanitize
    from ipt_ms.export import export_weights

    results = export_weights(args.weights, args.output, fmt=args.fmt, task=args.task, source=args.source,
                             opset=args.opset, with_stages=args.with_stages, device=args.device,
                             progress=not args.quiet, overwrite=args.overwrite, **architecture_overrides(args))
    for result in results:
        print(f"wrote {sanitize(result.describe())}")
    return 0
