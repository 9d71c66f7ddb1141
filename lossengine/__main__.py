"""``python -m lossengine`` runs the ``lossengine`` command."""
import sys

from .cli import main

sys.exit(main())
