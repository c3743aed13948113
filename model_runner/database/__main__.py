"""``python -m model_runner.database``: the ``model-runner-db`` command line."""

import sys

from model_runner.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
