"""`python -m wordbrush ...`: the same command as `wordbrush` (and what `torchrun -m wordbrush` runs)."""

import sys

from .cli import main

sys.exit(main())
