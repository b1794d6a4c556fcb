"""spark-submit entry point: `spark-submit jobs/train.py --conf conf/<env>.yaml [--set k=v]`."""

import sys

from lakeml.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
