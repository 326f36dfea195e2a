"""ipt-ms: the Image Processing Transformer (Chen et al., CVPR 2021) in MindSpore.

Importing the package sets one environment default that must be in place before
MindSpore is imported: ``GLOG_v=3``, which silences MindSpore's C++ warning spam
(``setdefault``: a value the user exported wins).

It no longer caps oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA``): on CPU the network runs its
convolutions as im2col + matmul (`ipt_ms.models.ipt.Conv2d`), which avoids the slow
reference convolution the cap was for, and MindSpore's matmuls are a quarter to a half
faster with AVX-512 (docs/runtime.md).
"""

import os

os.environ.setdefault("GLOG_v", "3")

__version__ = "0.1.0"

# Light imports only (no MindSpore / PyTorch), after the environment defaults above.
from ipt_ms.registry import create_model, list_models, model_spec  # noqa: E402
from ipt_ms.spec import IPTSpec  # noqa: E402

__all__ = ["IPTSpec", "__version__", "create_model", "list_models", "model_spec"]
