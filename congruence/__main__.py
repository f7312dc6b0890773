import sys

from congruence.api.cli import main

sys.exit(main())
