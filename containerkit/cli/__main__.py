"""``python -m containerkit.cli``."""

from containerkit.cli.main import main

main()
