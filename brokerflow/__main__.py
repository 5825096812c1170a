"""``python -m brokerflow``: the command line."""

import sys

from brokerflow.app.cli import main

sys.exit(main())
