"""``python -m gigavim``: the same command line as the ``gigavim`` script."""

import sys

from gigavim.cli import main

if __name__ == "__main__":
    sys.exit(main())
