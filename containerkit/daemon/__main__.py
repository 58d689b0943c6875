"""``python -m containerkit.daemon``: the same as the ``containerkitd`` command."""

from containerkit.daemon.main import main

raise SystemExit(main())
