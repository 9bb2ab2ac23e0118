import sys

from leakmap.cli import main

sys.exit(main())
