"""ipt-ms: the Image Processing Transformer (Chen et al., CVPR 2021) in MindSpore.

Importing the package sets two environment defaults that must be in place before
MindSpore is imported (see docs in README "Runtime settings"):

* ``ONEDNN_MAX_CPU_ISA=AVX2``: on AVX-512/AMX CPUs MindSpore's oneDNN otherwise picks a
  reference convolution kernel that is ~80x slower.
* ``GLOG_v=3``: silences MindSpore's C++ warning spam.

Both use ``setdefault``: a value the user exported wins.
"""

import os

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("GLOG_v", "3")

__version__ = "0.1.0"

# Light imports only (no MindSpore / PyTorch), after the environment defaults above.
from ipt_ms.registry import create_model, list_models, model_spec  # noqa: E402
from ipt_ms.spec import IPTSpec  # noqa: E402

__all__ = ["IPTSpec", "__version__", "create_model", "list_models", "model_spec"]
