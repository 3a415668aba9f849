"""What every billing admin builds on: the read-only admin and the credits column (from
``orgbilling.admin``, shared with the organizations admin) and the ledger tables' admin."""

from orgbilling.admin import ReadOnlyAdmin, credits_display

__all__ = ["LedgerAdmin", "ReadOnlyAdmin", "credits_display"]


class LedgerAdmin(ReadOnlyAdmin):
    """Large append-only tables: no exact total count on every changelist page."""

    show_full_result_count = False
    list_per_page = 100
