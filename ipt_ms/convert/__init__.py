"""Weight conversion between the official PyTorch checkpoints and MindSpore."""

from ipt_ms.convert.infer import infer_spec
from ipt_ms.convert.keymap import KEY_MAP, mindspore_key, mindspore_to_torch, torch_key, torch_to_mindspore
from ipt_ms.convert.weights import convert_file, load_weights, read_weight_file, save_weights, weights_format

__all__ = [
    "KEY_MAP", "convert_file", "infer_spec", "load_weights", "mindspore_key", "mindspore_to_torch",
    "read_weight_file", "save_weights", "torch_key", "torch_to_mindspore", "weights_format",
]
