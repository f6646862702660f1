"""``python -m meta_spliceai``: the same as the ``meta-spliceai`` command."""

import sys

from .cli import main

sys.exit(main())
