from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """Built without blocking the services that append audit events meanwhile."""

    atomic = False

    dependencies = [
        ('billing', '0013_audit_request_id_reconciliation_runs'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('request_id', ''), _negated=True), fields=['request_id'], name='audit_request_id'),
        ),
    ]
