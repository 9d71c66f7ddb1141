"""``python -m lossengine`` runs the ``lossengine`` command."""
import sys

from .cli import main

if __name__ == "__main__":      # not on import (documentation tools import every submodule)
    sys.exit(main())
