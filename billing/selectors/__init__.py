"""Reads and aggregates of the billing app (the references' SQL views become selectors)."""
