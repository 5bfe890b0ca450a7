"""A trigram index for the record list's name search (?q=). PostgreSQL only; see config/db.py."""

from django.db import migrations

from config.db import trigram_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("records", "0001_initial")]

    operations = [trigram_index(table="records_record", column="name", name="record_name_trgm")]
