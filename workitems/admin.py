"""Django admin for queues and work items.

Queues are plain configuration and edited here. Work items change only through the services
(complete, claim, reassign), which keep the run and its event log in step, so their admin is
read-only; reassigning is done from the work items page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from orchestration.selectors import work_item_emails

from .models import (
    FiredRule,
    GroupProfile,
    OutOfOffice,
    PersonProfile,
    Queue,
    SavedFilter,
    WorkItem,
    WorkItemComment,
    WorkItemDraft,
    WorkRollup,
)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("label", "api_name")
    search_fields = ("label", "api_name")
    filter_horizontal = ("users", "groups")


@admin.register(WorkItem)
class WorkItemAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "status", "assignee", "run", "created_at", "due_at", "completed_at")
    list_filter = ("status", "assignee_queue", "assignee_group")
    list_select_related = ("assignee_user", "assignee_group", "assignee_queue", "run")
    search_fields = ("label", "=run__id", "assignee_user__username")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("run", "step_run")
    readonly_fields = (
        "run",
        "step_run",
        "record_type",
        "record_id",
        "label",
        "status",
        "assignee_user",
        "assignee_group",
        "assignee_queue",
        "claimed_by",
        "completed_by",
        "outputs",
        "created_at",
        "completed_at",
        "due_at",
        "assignments",
        "priority",
        "assigned_at",
        "next_rule_at",
        "emails",
    )

    @admin.display(description="assignment emails")
    def emails(self, obj: WorkItem) -> SafeString:
        """Every assignment email of the item (all its assignments), with its delivery state."""
        rows = work_item_emails([obj.pk]).get(obj.pk, [])
        return SafeString(render_to_string("orchestration/_emails.html", {"emails": rows}) or "—")

    @admin.display(description="assignee")
    def assignee(self, obj: WorkItem) -> str:
        return obj.assignee_label

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WorkItemDraft)
class WorkItemDraftAdmin(admin.ModelAdmin):
    """What people typed into open items (Work Guide). Read-only: it is theirs to change."""

    list_display = ("id", "item", "user", "screen", "updated_at")
    list_select_related = ("item", "user")
    raw_id_fields = ("item", "user")
    readonly_fields = ("item", "user", "screen", "values", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WorkItemComment)
class WorkItemCommentAdmin(admin.ModelAdmin):
    """Comments on work items (Work Guide). Read-only: a comment is part of the item's history;
    deleting one (a superuser, e.g. for personal data) is the only change."""

    list_display = ("id", "item", "author", "created_at")
    list_select_related = ("item", "author")
    raw_id_fields = ("item", "author")
    search_fields = ("=item__id", "author__username", "body")
    readonly_fields = ("item", "author", "body", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SavedFilter)
class SavedFilterAdmin(admin.ModelAdmin):
    """The views of My Work people saved for themselves."""

    list_display = ("name", "user", "query", "created_at")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    search_fields = ("name", "user__username")
    readonly_fields = ("created_at",)


@admin.register(FiredRule)
class FiredRuleAdmin(admin.ModelAdmin):
    """Each firing of an SLA rule (reminders, escalations), and the ones a reassignment canceled.
    Read-only: the row is what keeps a rule from firing twice."""

    list_display = ("id", "item", "rule", "occurrence", "assignment", "scheduled_for", "fired_at")
    list_select_related = ("item",)
    raw_id_fields = ("item",)
    search_fields = ("=item__id", "rule")
    readonly_fields = ("item", "assignment", "rule", "occurrence", "scheduled_for", "fired_at", "outcome")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PersonProfile)
class PersonProfileAdmin(admin.ModelAdmin):
    """A person's manager: SLA rules escalate to them."""

    list_display = ("user", "manager")
    list_select_related = ("user", "manager")
    raw_id_fields = ("user", "manager")
    search_fields = ("user__username", "manager__username")


@admin.register(GroupProfile)
class GroupProfileAdmin(admin.ModelAdmin):
    """A group's managers: SLA rules that notify "managers" of a group's item reach them."""

    list_display = ("group",)
    list_select_related = ("group",)
    filter_horizontal = ("managers",)


@admin.register(OutOfOffice)
class OutOfOfficeAdmin(admin.ModelAdmin):
    """Who is away when, and who takes their new work (the Out of office page sets these)."""

    list_display = ("user", "starts_on", "ends_on", "delegate", "set_by", "updated_at")
    list_select_related = ("user", "delegate", "set_by")
    raw_id_fields = ("user", "delegate", "set_by")
    search_fields = ("user__username", "delegate__username")
    date_hierarchy = "starts_on"


@admin.register(WorkRollup)
class WorkRollupAdmin(admin.ModelAdmin):
    """The work-item figures of the Analytics rollups (breaches, open items by holder), rebuilt
    with the engine's by the refresh. Read-only: derived from the items."""

    list_display = ("day", "whole_month", "orchestration", "version", "stage", "step", "with_due", "breached")
    list_filter = ("whole_month",)
    list_select_related = ("orchestration", "version")
    date_hierarchy = "day"
    show_full_result_count = False
    readonly_fields = [f.name for f in WorkRollup._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
