"""``python -m mer_bench.cli``: the same as ``mer-bench``."""

import sys

from mer_bench.cli import main

sys.exit(main())
