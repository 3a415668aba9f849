"""The LLM gateway's database work, as services: hold a call's credits (``holds``), count its
plan quota (``quotas``), settle or release it, and the local records that keep a call charged
when its process dies (``open_calls``) or the database refuses its settlement (``spool``).

All synchronous: ``billing.gateway`` runs them on its database threads (``gateway/db.py``) and
keeps only the HTTP side (authentication, request parsing, upstream I/O, streaming, answers).
Settings and limits every part of the gateway reads are in ``config``.
"""
