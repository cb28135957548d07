"""`python -m tocsin`: the same as the `tocsin` command."""

import sys

from .cli import main

sys.exit(main())
