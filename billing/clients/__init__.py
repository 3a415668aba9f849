"""The one wrapper per external provider's SDK: client setup, the calls, and the provider's
errors mapped to ours. Services call these; no database work happens here."""
