"""The ledger: every write to a credit balance (pool, allocation, individual balance, hold,
charge row), the row locks they take (``locks``, whose docstring is the locking policy), the
SQL of the fast paths (``sql``, ``holds``) and the one rule for who may spend (``eligibility``).

Callers outside ``billing`` use the public facade ``billing.services``. Modules here import
each other one way: eligibility → sql → holds, charges → deduction / reservations / pool.
"""
