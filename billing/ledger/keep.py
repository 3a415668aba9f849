"""``KEEP``: the "leave this setting as it is" value of the ledger's optional arguments."""

from enum import Enum


class Keep(Enum):
    """``daily_cap=KEEP`` (or a period setting): leave it as it is (None removes it)."""

    KEEP = "keep"


KEEP = Keep.KEEP
