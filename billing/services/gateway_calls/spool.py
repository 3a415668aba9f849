"""Settlements the database refused, kept on local disk until they are charged.

When the database refuses a settlement, its exact terms (``settle_reservation``'s arguments,
the upstream's usage included) are written to ``LLM_SETTLEMENT_SPOOL_DIR`` as one JSON file
per reservation, fsync'ed before the client is answered, and removed once the charge is in the
ledger. Only a refused settlement touches the disk: the hot path writes nothing. What is left
there (the in-process retry gave up, or the process died) is charged by ``settle_spooled``,
run by the ``settle_spooled_calls`` task, its management command and, first, by the
``expire_reservations`` task, so a hold owed a settlement is settled rather than released.

Settling is idempotent by reservation: the same terms settled twice (the web process's retry
and the task, or a task run twice) charge once and replay the first result. A call whose
process died before it could settle is charged from its open record
(``gateway_calls.open_calls``), after the entries here: an entry, with the upstream's usage,
takes precedence over the record's estimate.
docs/decisions.md, "A refused settlement is spooled to disk until it is charged".
"""

import json
import logging
import os
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billing.models import CreditReservation
from billing.services import settle_reservation
from billing.services.gateway_calls import open_calls
from billing.services.gateway_calls.config import setting
from orgbilling.errors import ApplicationError, DatabaseUnavailable

logger = logging.getLogger(__name__)

SUFFIX = ".json"
FAILED_SUFFIX = ".failed"
FORMAT_VERSION = 1


def spool_dir() -> Path:
    return Path(setting("LLM_SETTLEMENT_SPOOL_DIR"))


def _entry_path(directory: Path, reservation_id: int) -> Path:
    return directory / f"{int(reservation_id)}{SUFFIX}"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_entry(terms: dict[str, Any]) -> Path | None:
    """Write ``terms`` durably (written to a temporary file, fsync'ed, renamed into place, the
    directory fsync'ed). None when the disk refuses too (logged: the call then rests on the
    in-process retry alone)."""
    directory = spool_dir()
    path = _entry_path(directory, terms["reservation_id"])
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    data = json.dumps({"version": FORMAT_VERSION, "terms": terms}, sort_keys=True).encode()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        _fsync_directory(directory)
    except OSError:
        logger.exception("gateway: could not spool the settlement of reservation %s to %s",
                         terms["reservation_id"], directory)  # fmt: skip
        return None
    return path


def spool_refused(terms: dict[str, Any]) -> Path | None:
    """The refused settlement's durable entry takes over from the call's open record (kept when
    the disk refused the entry: the record's estimate is then the call's only trace)."""
    spooled = write_entry(terms)
    if spooled is not None:
        open_calls.close_call(terms["reservation_id"])
    return spooled


def remove_entry(reservation_id: int) -> None:
    """The settlement is in the ledger: its entry goes (not fsync'ed: an entry that comes back
    after a crash is settled again, which replays)."""
    try:
        _entry_path(spool_dir(), reservation_id).unlink(missing_ok=True)
    except OSError:
        logger.exception("gateway: could not remove the spooled settlement of reservation %s", reservation_id)


def _read_terms(path: Path) -> dict[str, Any]:
    record = json.loads(path.read_bytes())
    if not isinstance(record, dict) or record.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown spool record format in {path}")
    terms = record["terms"]
    if not isinstance(terms, dict) or not isinstance(terms.get("reservation_id"), int):
        raise ValueError(f"no reservation in {path}")
    # The entry must name this database's reservation (not one of a restored copy's).
    if not CreditReservation.objects.filter(
        pk=terms["reservation_id"], request_id=terms["metadata"]["request_id"]
    ).exists():
        raise ValueError(f"{path} names no reservation of this database")
    return terms


def _written_at(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0  # settled meanwhile; skipped when read


@dataclass
class SpoolOutcome:
    settled: list[int] = field(default_factory=list)  # reservation ids now charged
    failed: list[str] = field(default_factory=list)  # entries set aside (``.failed``) for an operator
    process_lost: list[int] = field(default_factory=list)  # of ``settled``: from an open record


def settle_spooled() -> SpoolOutcome:
    """Charge every spooled settlement, oldest first, removing each entry once it is in the
    ledger. An entry that cannot be settled for a reason a retry will not cure (unreadable, a
    conflicting earlier settlement) is renamed ``*.failed`` and logged at ERROR. Then the open
    records of calls whose process died (``open_calls.settle_lost_calls``). A database failure
    propagates (the caller retries): what is not yet settled stays spooled."""
    directory = spool_dir()
    outcome = SpoolOutcome()
    if not directory.is_dir():
        return outcome
    entries = sorted(directory.glob(f"*{SUFFIX}"), key=_written_at)
    for path in entries:
        try:
            terms = _read_terms(path)
            result = settle_reservation(**terms)
        except FileNotFoundError:
            continue  # settled meanwhile by the web process's own retry
        except DatabaseUnavailable:
            raise
        except (ApplicationError, ValueError, KeyError, TypeError):
            logger.exception(
                "settle_spooled: cannot settle %s; set aside as %s%s", path, path.name, FAILED_SUFFIX
            )
            with suppress(FileNotFoundError):  # removed meanwhile: settled by the web process
                path.rename(path.with_name(path.name + FAILED_SUFFIX))
            outcome.failed.append(path.name)
            continue
        path.unlink(missing_ok=True)
        outcome.settled.append(terms["reservation_id"])
        logger.info("settle_spooled: reservation %s (request_id=%s) charged %d millicredits%s",
                    terms["reservation_id"], terms["metadata"].get("request_id"), result.credits_charged,
                    " (replayed)" if result.replayed else "")  # fmt: skip
    lost = open_calls.settle_lost_calls()
    outcome.settled += lost.settled
    outcome.process_lost = lost.settled
    outcome.failed += lost.failed
    return outcome
