"""Weight conversion between the official PyTorch checkpoints, ipt-ms and the MindSpore model zoo."""

from ipt_ms.convert.infer import infer_spec
from ipt_ms.convert.keymap import (
    KEY_MAP,
    ZOO_HUB_KEY_MAP,
    ZOO_KEY_MAP,
    mindspore_key,
    mindspore_to_torch,
    official_key_from_zoo,
    torch_key,
    torch_to_mindspore,
    zoo_key,
)
from ipt_ms.convert.layout import LAYOUTS, detect_layout
from ipt_ms.convert.weights import (
    convert_file,
    load_weights,
    read_weight_file,
    save_weights,
    weights_format,
    zoo_state,
)

__all__ = [
    "KEY_MAP", "LAYOUTS", "ZOO_HUB_KEY_MAP", "ZOO_KEY_MAP", "convert_file", "detect_layout", "infer_spec",
    "load_weights", "mindspore_key", "mindspore_to_torch", "official_key_from_zoo", "read_weight_file",
    "save_weights", "torch_key", "torch_to_mindspore", "weights_format", "zoo_key", "zoo_state",
]
