"""`python -m klaviyo_sim`."""

import sys

from klaviyo_sim.cli import main

sys.exit(main())
