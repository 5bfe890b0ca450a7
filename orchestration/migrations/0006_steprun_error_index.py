"""A partial index on the steps in error (few, and counted by the failed-steps metric and looked
for by admins): built CONCURRENTLY on PostgreSQL so that migrating a live database does not
block writes to the step table."""

from typing import Any

from django.db import migrations, models

INDEX = models.Index(condition=models.Q(("status", "error")), fields=["id"], name="step_error")


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS step_error ON orchestration_steprun (id) WHERE status = 'error'"
        )
    else:
        schema_editor.add_index(apps.get_model("orchestration", "StepRun"), INDEX)


def backwards(apps: Any, schema_editor: Any) -> None:
    schema_editor.remove_index(apps.get_model("orchestration", "StepRun"), INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("orchestration", "0005_run_filter_statistics")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="steprun", index=INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
