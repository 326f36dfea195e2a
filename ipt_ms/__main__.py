import sys

from ipt_ms.cli import main

sys.exit(main())
