import sys

from avmoe.cli import main

sys.exit(main())
