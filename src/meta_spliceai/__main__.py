"""``python -m meta_spliceai``: the same as the ``meta-spliceai`` command (importing this module runs nothing)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
