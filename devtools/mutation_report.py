"""Summarise `mutmut results` per module: killed, survived, no tests.

python -m devtools.mutation_report     # what `make mutate` prints last
"""

import collections
import re
import subprocess
import sys


def main():
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = collections.defaultdict(collections.Counter)
    for line in out.splitlines():
        found = re.match(r"\s*([\w.]+?)\.x[_ǁ]\S*__mutmut_\d+:\s*(.+)$", line)
        if found:
            counts[found.group(1)][found.group(2).strip()] += 1
    print(f"{'module':40} {'killed':>7} {'survived':>9} {'no tests':>9}")
    for module, tally in sorted(counts.items()):
        print(
            f"{module:40} {tally['killed']:>7} {tally['survived']:>9}"
            f" {tally['no tests']:>9}"
        )


if __name__ == "__main__":
    main()
