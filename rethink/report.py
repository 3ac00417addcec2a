"""``python -m rethink.report PATH... [--out DIR] [--metric best|final] [--alpha A] [--wandb] [--speed JSON]``:
tables, verdicts, costs, plots and a report from ``result.json`` files (the code is :mod:`rethink.results.report`)."""

import sys

from rethink.results.report import main

if __name__ == "__main__":
    sys.exit(main())
