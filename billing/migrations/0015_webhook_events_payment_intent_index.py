import django.db.models.fields.json
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """Built without blocking the webhook endpoints that store events meanwhile."""

    atomic = False

    dependencies = [
        ('billing', '0014_audit_request_id_index'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='webhookevent',
            index=models.Index(
                django.db.models.fields.json.KeyTransform(
                    'payment_intent',
                    django.db.models.fields.json.KeyTransform(
                        'object', django.db.models.fields.json.KeyTransform('data', 'payload')
                    ),
                ),
                models.F('provider'),
                name='webhook_events_payment_intent',
            ),
        ),
    ]
