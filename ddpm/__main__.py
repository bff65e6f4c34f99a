"""``python -m ddpm ...`` is the ``ddpm`` command."""
import sys

from ddpm.cli import main

sys.exit(main())
