"""``python -m maest.cli``: the same as the ``maest`` command."""

from maest.cli import main

main()
