"""Admin for record types, records and their field history. Records are saved through
records.services, so an edit here keeps the history and launches what it qualifies for,
exactly like an edit on the record page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .models import FieldChange, Record, RecordType
from .services import record_create, record_type_validate_fields, record_update, record_values_clean


class RecordTypeAdminForm(forms.ModelForm):
    class Meta:
        model = RecordType
        fields = ["api_name", "label", "label_plural", "fields"]
        help_texts = {
            "fields": 'A list of {"name", "label", "type", "required", "choices", "help"}. Types: '
            "text, long_text, number, decimal, date, datetime, boolean, choice, email, user.",
        }

    def clean_fields(self) -> list[dict[str, Any]]:
        value = self.cleaned_data.get("fields")
        if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
            raise ValidationError("Give a JSON list of field objects.")
        return record_type_validate_fields(value)


@admin.register(RecordType)
class RecordTypeAdmin(admin.ModelAdmin):
    form = RecordTypeAdminForm
    list_display = ["label", "api_name", "field_count", "created_at"]
    search_fields = ["label", "api_name"]

    @admin.display(description="Fields")
    def field_count(self, obj: RecordType) -> int:
        return len(obj.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: RecordType | None = None) -> list[str]:
        # Orchestrations and URLs refer to a type by its api name: renaming would orphan them.
        return ["api_name"] if obj is not None else []


class FieldChangeInline(admin.TabularInline):
    model = FieldChange
    fields = readonly_fields = ("changed_at", "changed_by", "field", "old", "new")
    ordering = ["-id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordAdminForm(forms.ModelForm):
    class Meta:
        model = Record
        fields = ["record_type", "name", "owner", "data"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "{}" is a valid record of a type without required fields; the type decides, not the form.
        self.fields["data"].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        rt = cleaned.get("record_type") or (self.instance.record_type if self.instance.pk else None)
        if rt is None or self.has_error("data"):
            return cleaned
        data = cleaned.get("data") or {}
        if not isinstance(data, dict):
            self.add_error("data", "Give a JSON object of field values.")
            return cleaned
        try:
            if self.instance.pk:
                cleaned["data"] = record_values_clean(rt, data, partial=True, current=self.instance.data)
            else:
                cleaned["data"] = record_values_clean(rt, data)
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                self.add_error("data", [f"{name}: {e}" for e in errors])
        return cleaned


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    form = RecordAdminForm
    list_display = ["name", "record_type", "owner", "updated_at"]
    list_filter = ["record_type"]
    list_select_related = ["record_type", "owner"]
    search_fields = ["name"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [FieldChangeInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Record | None = None) -> list[str]:
        # The data is validated against the type; changing the type under it would not be.
        return [*self.readonly_fields, "record_type"] if obj is not None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Record, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            record_update(
                record=obj, values=data["data"], name=data["name"], owner=data["owner"], actor=request.user
            )
            obj.refresh_from_db()
            return
        created = record_create(
            record_type=data["record_type"],
            name=data["name"],
            values=data["data"],
            owner=data["owner"],
            actor=request.user,
        )
        # The admin goes on to log and redirect with `obj`: give it the saved row.
        obj.pk = created.pk
        obj.refresh_from_db()


@admin.register(FieldChange)
class FieldChangeAdmin(admin.ModelAdmin):
    """History is append-only: visible here, written only by records.services."""

    list_display = ["record", "field", "old", "new", "changed_by", "changed_at"]
    list_select_related = ["record", "changed_by"]
    list_filter = ["record__record_type"]
    search_fields = ["record__name", "field"]
    date_hierarchy = "changed_at"
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
