import sys

from learnlab.cli import main

sys.exit(main())
