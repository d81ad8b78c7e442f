"""Run the command line as ``python -m fastshap``."""

from fastshap.cli import main

raise SystemExit(main())
