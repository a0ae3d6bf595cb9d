"""``python -m slowonly_zoo``: the ``slowonly-zoo`` command line (also under ``torchrun -m slowonly_zoo``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
