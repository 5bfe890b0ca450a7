from django.dispatch import Signal

# Sent by records.services after a record is created or changed, inside the save's transaction.
# Arguments: record, record_type (api name), old (dict of values, None on create), new, actor.
record_saved = Signal()
