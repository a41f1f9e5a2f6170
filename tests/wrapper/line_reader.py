"""A minimal line-based CLI for injection tests: each line typed into it is written to a FIFO.

It shows ``ready>`` while waiting for input.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    out_path = sys.argv[1]
    while True:
        try:
            line = input("ready> ")
        except EOFError:
            return
        with open(out_path, "w", encoding="utf-8") as out:  # a FIFO: blocks until the test reads
            out.write(json.dumps(line) + "\n")
        print(f"got {len(line)} chars", flush=True)


if __name__ == "__main__":
    main()
