"""spark-submit entry point: `spark-submit jobs/monitor.py --conf conf/<env>.yaml [--set k=v]`."""

import sys

from lakeml.cli import main

if __name__ == "__main__":
    sys.exit(main(["monitor", *sys.argv[1:]]))
