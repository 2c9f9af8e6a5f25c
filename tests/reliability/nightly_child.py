"""A child process of the concurrency test: one nightly run for the date in
``argv[1]``, started when a line arrives on stdin (so two children start
together once both have imported Prefect). Prints ``ready``, then one JSON
line: ``{"ok": summary}`` or ``{"error": "Type: message"}``. Connection
settings come from the environment, as on a worker."""

from __future__ import annotations

import json
import sys
from datetime import date


def main() -> None:
    as_of = date.fromisoformat(sys.argv[1])
    from flows.nightly import nightly_replenishment

    print("ready", flush=True)
    sys.stdin.readline()
    try:
        summary = nightly_replenishment(as_of=as_of, report_top_n=0)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
    else:
        print(json.dumps({"ok": summary}, default=str), flush=True)


if __name__ == "__main__":
    main()
