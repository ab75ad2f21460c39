import sys

from fcn_ref.train import recipes  # noqa: F401 - registers the "recipe" subcommand
from fcn_ref.train.cli import main

sys.exit(main())
