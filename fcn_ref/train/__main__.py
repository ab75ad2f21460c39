import sys

from fcn_ref.train.cli import main

sys.exit(main())
