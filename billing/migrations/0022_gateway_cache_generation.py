"""The gateway's cache generation (``billing.services.gateway_calls.cache``): one row that every
change to what the gateway caches (API keys, users, memberships, organizations, model prices)
bumps in the changing transaction, so a process that reads it sees the change as soon as it is
committed. ``last_used_at`` and ``last_login`` are not part of what is cached and do not bump it.
"""

from django.db import migrations

TABLES = {
    # table: the columns whose change does not matter to the gateway's cache
    "api_keys": ["last_used_at"],
    "users": ["last_login"],
    "organization_members": [],
    "organizations": [],
    "model_prices": [],
}

FORWARD = [
    """
    CREATE TABLE gateway_cache_generation (
        id smallint PRIMARY KEY CHECK (id = 1),
        generation bigint NOT NULL
    )
    """,
    "INSERT INTO gateway_cache_generation (id, generation) VALUES (1, 1)",
    """
    CREATE FUNCTION gateway_cache_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE gateway_cache_generation SET generation = generation + 1 WHERE id = 1;
        RETURN NULL;
    END
    $$
    """,
]
for table, ignored in TABLES.items():
    unchanged = " - ".join(["to_jsonb(OLD)", *(f"'{c}'" for c in ignored)])
    changed = " - ".join(["to_jsonb(NEW)", *(f"'{c}'" for c in ignored)])
    FORWARD += [
        f"""
        CREATE TRIGGER gateway_cache_{table}_update AFTER UPDATE ON {table}
        FOR EACH ROW WHEN (({unchanged}) IS DISTINCT FROM ({changed}))
        EXECUTE FUNCTION gateway_cache_bump()
        """,
        f"""
        CREATE TRIGGER gateway_cache_{table}_change AFTER INSERT OR DELETE OR TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION gateway_cache_bump()
        """,
    ]

BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS gateway_cache_{table}_{kind} ON {table}"
        for table in TABLES
        for kind in ("update", "change")
    ),
    "DROP FUNCTION IF EXISTS gateway_cache_bump()",
    "DROP TABLE IF EXISTS gateway_cache_generation",
]


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0021_allocation_daily_cap"),
        ("organizations", "0004_invitations"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
