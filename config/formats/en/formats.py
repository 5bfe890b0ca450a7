"""One way to write dates on every page: ISO order with the year, the same on a phone and a
desk, in English (Django's own en formats drop the year in places and spell months out).
Templates that need seconds (the run's event timeline) add `:s` to the same order."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
