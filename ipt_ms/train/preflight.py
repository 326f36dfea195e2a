"""``python -m ipt_ms.train.preflight``: the path scripts/train_distributed.sh runs; see `ipt_ms.cli.preflight`.

An entry point, in the CLI layer of docs/architecture.md: the check parses `ipt-ms train`'s arguments.
"""

import sys

from ipt_ms.cli.preflight import check, main

__all__ = ["check", "main"]

if __name__ == "__main__":
    sys.exit(main())
