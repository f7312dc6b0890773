import sys

from congruence.cli.main import main

sys.exit(main())
