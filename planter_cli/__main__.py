import sys

from planter_cli.main import main

sys.exit(main())
