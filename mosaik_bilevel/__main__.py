"""``python -m mosaik_bilevel`` runs the ``mosaik-bilevel`` command."""

import sys

from .cli import main

sys.exit(main())
