"""spark-submit entry point: `spark-submit jobs/retrain.py --conf conf/<env>.yaml [--set k=v]`."""

import sys

from lakeml.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
