"""Read and write IPT weights in PyTorch (.pt/.pth/.safetensors) and MindSpore (.ckpt) files.

The public face of weight files, in three modules of one idea each:

- `ipt_ms.convert.formats`: which format a file is (extension, first bytes);
- `ipt_ms.convert.readers`: any file -> official-keyed arrays, checked (`load_weights`);
- `ipt_ms.convert.writers`: official-keyed arrays -> ipt-ms or model-zoo files (`save_weights`,
  `convert_file`).

Everything goes through numpy arrays keyed like the official PyTorch state_dict, checked
against the architecture before anything is written.
"""

from ipt_ms.convert.formats import (
    MINDSPORE_SUFFIXES,
    SPEC_METADATA_KEY,
    TORCH_METADATA_ENTRY,
    TORCH_SUFFIXES,
    WRITE_LAYOUTS,
    check_regular_file,
    check_weights_path,
    sniff_format,
    weights_format,
)
from ipt_ms.convert.readers import (
    WeightFile,
    load_weights,
    log_weights_variant,
    official_state,
    read_ms_checkpoint,
    read_weight_file,
    recorded_spec,
    resolve_spec,
    state_digest,
)
from ipt_ms.convert.writers import convert_file, describe, save_weights, write_ms_checkpoint, zoo_state

__all__ = [
    "MINDSPORE_SUFFIXES", "SPEC_METADATA_KEY", "TORCH_METADATA_ENTRY", "TORCH_SUFFIXES", "WRITE_LAYOUTS",
    "WeightFile", "check_regular_file", "check_weights_path", "convert_file", "describe", "load_weights",
    "log_weights_variant", "official_state", "read_ms_checkpoint", "read_weight_file", "recorded_spec",
    "resolve_spec", "save_weights", "sniff_format", "state_digest", "weights_format", "write_ms_checkpoint",
    "zoo_state",
]
