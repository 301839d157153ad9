"""The benchmark of the performance page (docs/performance.md): `bpjax bench`, results in experiments/results/bench/.

python experiments/bench.py                 # every row, medians of 5 (about 6 minutes on 2 cores)
python experiments/bench.py --quick --steps 500 --repeats 1   # a smoke run
"""

import sys

from bpjax.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", "experiments/results/bench"]
    sys.exit(main(["bench", *args]))
