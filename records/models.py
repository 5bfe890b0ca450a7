"""Business records: a RecordType declares typed fields; a Record holds validated values."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from orchestration import datatypes

# A record field has one of the definitions' data types (orchestration.datatypes: the same form
# field and coercion as a screen field of that type), all but multiple choice and JSON.
FieldType = models.TextChoices(  # type: ignore[call-overload]
    "FieldType", [(t.name.upper(), (t.value, datatypes.LABELS[t])) for t in datatypes.RECORD_FIELD_TYPES]
)


class RecordType(models.Model):
    """`fields` is a list of {name, label, type, required, choices, help}."""

    api_name = models.SlugField(max_length=80, unique=True)
    label = models.CharField(max_length=200)
    label_plural = models.CharField(max_length=200, blank=True)
    fields = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    @property
    def plural(self) -> str:
        return self.label_plural or f"{self.label}s"

    def field(self, name: str) -> dict | None:
        return next((f for f in self.fields if f["name"] == name), None)


class Record(models.Model):
    record_type = models.ForeignKey(RecordType, on_delete=models.PROTECT, related_name="records")
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["record_type", "-id"], name="record_type_id")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("records:detail", args=[self.record_type.api_name, self.pk])


class FieldChange(models.Model):
    """Field history: one row per changed field per save."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="changes")
    field = models.CharField(max_length=80)
    old = models.JSONField(null=True)
    new = models.JSONField(null=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    # The idempotency key of the flow action that made this change (all rows of one save share
    # it): a retried step that runs the same action again finds it here and changes nothing.
    effect_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["record", "effect_key"], condition=~models.Q(effect_key=""), name="fieldchange_effect"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.old!r} -> {self.new!r}"
