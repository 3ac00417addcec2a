"""``python -m rethink.progress DIR...``: where each cell of a sweep stands (the code is
:mod:`rethink.results.progress`)."""

import sys

from rethink.results.progress import main

if __name__ == "__main__":
    sys.exit(main())
