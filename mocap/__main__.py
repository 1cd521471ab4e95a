"""`python -m mocap` runs the mocap command."""

import sys

from mocap.cli import main

sys.exit(main())
