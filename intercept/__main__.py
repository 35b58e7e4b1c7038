"""`python -m intercept` runs the command line."""

from intercept.cli import main

raise SystemExit(main())
