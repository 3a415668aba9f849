"""Template filters of the portal (registered as the ``portal`` library in TEMPLATES)."""

from datetime import UTC

from django import template

from orgbilling.money import millicredits_to_credits

register = template.Library()


@register.filter
def credits(millicredits: int | None) -> str:
    """Millicredits as credits for people: ``1234500`` → ``1,234.5``; never millicredits."""
    text = f"{millicredits_to_credits(int(millicredits or 0)):,.3f}"
    return text.rstrip("0").rstrip(".")


@register.filter
def percent_of(part: int | None, whole: int | None) -> int:
    """``part`` as a whole percentage of ``whole`` (0 when ``whole`` is 0), for progress bars."""
    if not whole:
        return 0
    return max(0, min(100, round(100 * int(part or 0) / int(whole))))


@register.filter
def web_link(url: object) -> str:
    """``url`` when it is an http(s) address (an invoice's PDF from the billing backend), else
    empty: a stored ``javascript:`` address must never become a link."""
    text = str(url or "")
    return text if text.startswith(("https://", "http://")) else ""


@register.filter
def plain_credits(millicredits: int | None) -> str:
    """Millicredits as a plain number of credits for a form's number input (no grouping)."""
    text = f"{millicredits_to_credits(int(millicredits or 0)):.3f}"
    return text.rstrip("0").rstrip(".")


@register.filter
def recurrence(allocation: object) -> str:
    """A recurring allocation's period for people: ``monthly · refill · next 2027-01-01`` (the
    next boundary's UTC day); empty when it does not recur."""
    period = str(getattr(allocation, "period", "") or "")
    if not period:
        return ""
    parts = [period, str(getattr(allocation, "period_mode", "") or "")]
    next_start = getattr(allocation, "next_period_start", None)
    if next_start is not None:
        parts.append(f"next {next_start.astimezone(UTC).date().isoformat()}")
    return " · ".join(part for part in parts if part)
