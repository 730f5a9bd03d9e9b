"""``python -m app.cli``: the ``xrdmap`` command."""

import sys

from app.cli import main

sys.exit(main())
