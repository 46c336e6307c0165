"""`python -m wordbrush.serve [flags]`: the same as `wordbrush serve [flags]`."""

import sys

from .command import main

sys.exit(main())
