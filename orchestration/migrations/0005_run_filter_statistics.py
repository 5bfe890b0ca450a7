"""Multi-column statistics for the runs page's filters combined with a status (bench/MONITOR.md:
`?started_by=alice&status=error` with no such run took 170 ms, 9 ms with them). PostgreSQL only;
see config/db.py."""

from django.db import migrations

from config.db import column_statistics


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0004_run_label_trigram")]

    operations = [
        column_statistics(
            table="orchestration_run",
            columns={
                "run_status_stage_stats": ("status", "current_stage"),
                "run_status_starter_stats": ("status", "started_by_id"),
                "run_status_orchestration_stats": ("status", "orchestration_id"),
                "run_status_version_stats": ("status", "version_id"),
            },
        )
    ]
