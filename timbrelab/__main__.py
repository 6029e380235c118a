"""``python -m timbrelab ...`` (and ``torchrun ... -m timbrelab train ...``): the command line."""

import sys

from timbrelab.cli import main

sys.exit(main())
