from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django import forms

from records.forms import initial_for, record_form_class
from records.services import record_create
from tests.factories import UserFactory, ticket_type

pytestmark = pytest.mark.django_db


def test_form_has_a_field_of_the_right_kind_for_every_record_field():
    form = record_form_class(ticket_type())()
    fields = form.fields
    assert list(fields)[:2] == ["name", "owner"]
    assert isinstance(fields["title"], forms.CharField) and fields["title"].required
    assert fields["title"].help_text == "One line"
    assert isinstance(fields["body"].widget, forms.Textarea)
    assert isinstance(fields["count"], forms.IntegerField)
    assert isinstance(fields["price"], forms.DecimalField)
    assert fields["due"].widget.input_type == "date"
    assert fields["meeting"].widget.input_type == "datetime-local"
    assert isinstance(fields["urgent"], forms.BooleanField) and not fields["urgent"].required
    assert isinstance(fields["contact"], forms.EmailField)
    assert isinstance(fields["assignee"], forms.ModelChoiceField)


def test_every_choice_starts_empty_and_a_required_one_must_be_picked():
    """A browser shows a select's first option as chosen: without an empty one, a required
    choice looked answered (and was saved) before anyone picked."""
    from tests.factories import case_type

    ticket = record_form_class(ticket_type())()
    assert [value for value, _ in ticket.fields["colour"].choices] == ["", "red", "green"]
    case_form = record_form_class(case_type())
    severity = case_form().fields["severity"]
    assert list(severity.choices) == [("", "Choose…"), ("Low", "Low"), ("Medium", "Medium"), ("High", "High")]
    html = str(case_form()["severity"])
    assert '<option value="" selected>Choose…</option>' in html
    form = case_form(data={"name": "x", "severity": ""})
    assert not form.is_valid() and "severity" in form.errors


def test_user_fields_offer_only_active_users():
    UserFactory(username="active_one")
    UserFactory(username="gone", is_active=False)
    form = record_form_class(ticket_type())()
    names = {u.username for u in form.fields["assignee"].queryset}
    assert "active_one" in names and "gone" not in names
    assert "gone" not in {u.username for u in form.fields["owner"].queryset}


def test_cleaned_values_are_accepted_by_the_service_and_round_trip_into_the_edit_form():
    rt = ticket_type()
    pat = UserFactory(username="pat")
    form = record_form_class(rt)(
        {
            "name": "T1",
            "title": "Printer",
            "body": "line 1\nline 2",
            "count": "3",
            "price": "12.50",
            "due": "2026-03-01",
            "meeting": "2026-03-01T09:30",
            "urgent": "on",
            "colour": "red",
            "contact": "pat@example.com",
            "assignee": str(pat.pk),
        }
    )
    assert form.is_valid(), form.errors
    record = record_create(record_type=rt, name="T1", values=form.values(), owner=None)
    assert record.data["count"] == 3
    assert record.data["price"] == "12.50"
    assert record.data["due"] == "2026-03-01"
    assert record.data["urgent"] is True
    assert record.data["assignee"] == pat.pk

    initial = initial_for(record)
    assert initial["price"] == Decimal("12.50")
    assert initial["due"] == dt.date(2026, 3, 1)
    assert initial["meeting"].strftime("%Y-%m-%dT%H:%M") == "2026-03-01T09:30"
    # The edit form shows what was stored, so submitting it unchanged changes nothing.
    resubmitted = record_form_class(rt)({**form.data, "price": "12.5", "owner": ""}, initial=initial)
    assert resubmitted.is_valid(), resubmitted.errors
    assert resubmitted.changed_data == []


def test_a_fields_help_text_is_escaped_because_the_form_layout_prints_it_unescaped():
    from django.template import Context, Template

    from records.services import record_type_upsert

    rt = record_type_upsert(
        api_name="hostile",
        label="Hostile",
        fields=[{"name": "title", "type": "text", "help": "<img src=x onerror=alert(1)> & <b>"}],
    )
    html = Template("{% load crispy_forms_tags %}{{ form|crispy }}").render(
        Context({"form": record_form_class(rt)()})
    )
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;" in html
    assert "<img" not in html and "<b>" not in html
