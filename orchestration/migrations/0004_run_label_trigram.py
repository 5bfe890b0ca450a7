"""A trigram index for the runs page's free-text search on the record name (?q=): 2.2 s → a
few ms at a million runs (bench/MONITOR.md). PostgreSQL only; see config/db.py."""

from django.db import migrations

from config.db import trigram_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("orchestration", "0003_run_list_indexes")]

    operations = [trigram_index(table="orchestration_run", column="record_label", name="run_label_trgm")]
