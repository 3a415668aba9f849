"""Summarise a py-spy collapsed-stack profile (``benchmarks/gateway.py --profile FILE``): the
share of samples under each group of code (a frame whose file matches), inclusive, and the top
functions by own samples.

    .venv/bin/python benchmarks/profile_summary.py FILE [--top 25]
"""

import argparse
from collections import Counter

# Group: any frame whose text contains one of these (first match from the leaf wins for "own").
GROUPS = {
    "gateway database units (our code)": ("billing/gateway/db.py", "gateway_calls/", "billing/ledger/"),
    "psycopg / psycopg_pool": ("psycopg",),
    "thread hand-off (asgiref, concurrent.futures, threading)": (
        "asgiref/",
        "concurrent/futures",
        "threading.py",
    ),
    "httpx / httpcore (the upstream client before issue 15 §2)": ("httpx/", "httpcore/", "h11/"),
    "aiohttp (upstream client)": ("aiohttp/", "multidict/", "yarl/", "aiohappyeyeballs/"),
    "uvicorn / ASGI server": ("uvicorn/", "httptools"),
    "Django request handling": ("django/",),
    "asyncio event loop": ("asyncio/", "uvloop"),
    "json": ("json/", "orjson"),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    with open(args.file) as profile:
        for line in profile:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            total += count
            frames = stack.split(";")
            threads[frames[0]] += count
            for group, needles in GROUPS.items():
                if any(needle in frame for frame in frames for needle in needles):
                    inclusive[group] += count
            own[frames[-1]] += count
    print(f"{total} samples")
    print("\nby thread:")
    for thread, count in threads.most_common(8):
        print(f"  {100 * count / total:5.1f} %  {thread}")
    print("\ninclusive (a sample counts in every group on its stack):")
    for group, count in inclusive.most_common():
        print(f"  {100 * count / total:5.1f} %  {group}")
    print(f"\ntop {args.top} functions by own samples:")
    for frame, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
