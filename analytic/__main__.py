"""``python -m analytic``: the same command line as the ``voicegate`` script."""

import sys

from analytic.cli import main

sys.exit(main())
