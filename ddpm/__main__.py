"""``python -m ddpm ...`` is the ``ddpm`` command."""
from ddpm.cli import entry

entry()
