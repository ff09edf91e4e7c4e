"""python -m halfbyte.ray embed --ray [ADDRESS] -m MODEL -i INPUT -o OUTDIR (see halfbyte.ray.cli)."""

import sys

from .cli import main

sys.exit(main())
