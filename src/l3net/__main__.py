"""``python -m l3net`` (and ``torchrun -m l3net train ...``) runs the command line."""

from l3net.cli import main

raise SystemExit(main())
