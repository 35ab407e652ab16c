import sys

from telucodec.cli import main

sys.exit(main())
