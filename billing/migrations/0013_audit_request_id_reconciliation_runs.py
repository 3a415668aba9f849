from django.db import migrations, models


class Migration(migrations.Migration):
    """Audit events keep the X-Request-Id of the request that wrote them (empty for older rows
    and work outside a request); each ledger reconciliation run is recorded for /metrics."""

    dependencies = [
        ('billing', '0012_auto_topup'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReconciliationRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField()),
                ('drift_count', models.PositiveIntegerField()),
            ],
            options={
                'db_table': 'reconciliation_runs',
                'ordering': ['-finished_at', '-id'],
                'indexes': [models.Index(fields=['-finished_at'], name='reconciliation_finished')],
            },
        ),
        # A constant default: PostgreSQL adds the column without rewriting the table.
        migrations.AddField(
            model_name='auditevent',
            name='request_id',
            field=models.CharField(blank=True, default='', help_text='X-Request-Id of the request that wrote it', max_length=128),
        ),
    ]
