"""Reading and ageing the gateway's open-call records
(billing/services/gateway_calls/open_calls.py) in tests."""

import json
from pathlib import Path


def records(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.open")) if spool.is_dir() else []


def age(path: Path, seconds: float) -> None:
    """As if the call had started ``seconds`` earlier."""
    record = json.loads(path.read_bytes())
    record["limit_from"] -= seconds
    path.write_text(json.dumps(record))
