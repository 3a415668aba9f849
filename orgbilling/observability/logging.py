"""Structured logs: every record, from structlog or the standard library, leaves through one
formatter as one JSON object per line (``LOG_FORMAT=json``, production) or a readable line
(``console``, dev), with ``timestamp``, ``level``, ``logger``, ``event``, ``request_id`` and
whatever context is bound (``structlog.contextvars.bind_contextvars``, ``extra=``).

``LOGGING`` (orgbilling/settings/observability.py) installs ``formatter``; ``configure_structlog``
(run when Django starts) routes structlog loggers through the standard library, so handlers,
levels and pytest's ``caplog`` apply to both.
"""

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger


def _request_id_always(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """A fixed schema: ``request_id`` is null outside a request rather than missing."""
    event_dict.setdefault("request_id", None)
    return event_dict


SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _request_id_always,
]


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(log_format: str = "json") -> logging.Formatter:
    """The formatter of every handler (``LOGGING["formatters"]["structured"]``)."""
    renderer: Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()  # other objects as their repr()
        tail: list[Processor] = [structlog.processors.format_exc_info, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        tail = [renderer]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
