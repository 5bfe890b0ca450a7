"""Django admin for definitions, runs and API tokens.

Definitions and runs change only through the services and the engine (versions are immutable,
runs move by transitions that record events), so their admin pages are read-only; the one
write offered is "make active", which goes through `version_activate`. Monitoring with actions
(cancel, retry, skip) lives in the app's own pages.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from . import outbox, services
from .models import (
    AnalyticsRollup,
    ApiToken,
    DefinitionEvent,
    Draft,
    DraftRevision,
    Flow,
    FlowVersion,
    Orchestration,
    OrchestrationVersion,
    OutboxEmail,
    RollupDirty,
    RollupState,
    Run,
    RunEvent,
    StageRun,
    StepRun,
)


def pretty_json(value: Any) -> str:
    # A class, not a style attribute: the Content-Security-Policy allows no inline styles.
    return format_html("<pre class='pretty-json'>{}</pre>", json.dumps(value, indent=2, default=str))


# Every admin page showing pretty_json loads the stylesheet that lays it out.
ADMIN_CSS = {"all": ["orchestration/admin.css"]}


class ReadOnlyMixin:
    """Viewable by whoever may view; nothing added or edited here (deleting stays possible
    for those with the delete permission, e.g. to clear out test runs)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- definitions ------------------------------------------------------------------------------


class VersionInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("number", "is_active", "created_at", "created_by", "source", "checksum_short")
    readonly_fields = fields
    ordering = ("-number",)

    @admin.display(description="checksum")
    def checksum_short(self, obj: Any) -> str:
        return obj.checksum[:12]


class OrchestrationVersionInline(VersionInline):
    model = OrchestrationVersion

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("created_by")


class FlowVersionInline(VersionInline):
    model = FlowVersion

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("created_by")


@admin.register(Orchestration)
class OrchestrationAdmin(admin.ModelAdmin):
    list_display = ("api_name", "label", "created_at")
    search_fields = ("api_name", "label")
    # Label and description come from the documents: the next import would overwrite an edit.
    readonly_fields = ("api_name", "label", "description", "created_at")
    inlines = [OrchestrationVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orchestrations are created by importing a definition


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("api_name", "label", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("api_name", "label")
    readonly_fields = ("api_name", "label", "kind", "description", "created_at")
    inlines = [FlowVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class VersionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = ADMIN_CSS

    list_display = ["__str__", "number", "is_active", "created_at", "created_by", "source"]
    list_filter = ["is_active"]
    readonly_fields = [
        "number",
        "is_active",
        "checksum",
        "created_at",
        "created_by",
        "source",
        "document_pretty",
    ]
    exclude = ("document",)
    actions = ["make_active"]

    @admin.display(description="document")
    def document_pretty(self, obj: Any) -> str:
        return pretty_json(obj.document)

    @admin.action(description="Make the selected version active", permissions=["import_definitions"])
    def make_active(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        versions = list(queryset)
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            services.version_activate(version=versions[0], actor=request.user)
        except PermissionDenied as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{versions[0]} is now active; runs already started keep their version.")

    def has_import_definitions_permission(self, request: HttpRequest) -> bool:
        # Offered only to those who may import (the service checks again).
        return bool(request.user.has_perm(services.PERM_IMPORT))


@admin.register(OrchestrationVersion)
class OrchestrationVersionAdmin(VersionAdmin):
    list_display = [*VersionAdmin.list_display, "start_type", "record_type"]
    list_filter = ["is_active", "start_type", "orchestration"]
    list_select_related = ("orchestration", "created_by")
    search_fields = ("orchestration__api_name",)
    readonly_fields = ["orchestration", "start_type", "record_type", *VersionAdmin.readonly_fields]


@admin.register(FlowVersion)
class FlowVersionAdmin(VersionAdmin):
    list_filter = ["is_active", "flow__kind"]
    list_select_related = ("flow", "created_by")
    search_fields = ("flow__api_name",)
    readonly_fields = ["flow", *VersionAdmin.readonly_fields]


# --- runs -------------------------------------------------------------------------------------


class StageRunInline(ReadOnlyMixin, admin.TabularInline):
    model = StageRun
    extra = 0
    can_delete = False
    fields = ("key", "index", "status", "outcome", "started_at", "ended_at")
    readonly_fields = fields


class StepRunInline(ReadOnlyMixin, admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = (
        "stage_run",
        "key",
        "kind",
        "status",
        "attempts",
        "exec_state",
        "error",
        "started_at",
        "ended_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("stage_run")


@admin.register(Run)
class RunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = ADMIN_CSS

    list_display = ("id", "orchestration", "version", "status", "current_stage", "record_label", "started_at")
    list_filter = ("status", "orchestration")
    list_select_related = ("orchestration", "version", "version__orchestration")
    search_fields = ("=id", "record_label", "orchestration__api_name")
    date_hierarchy = "started_at"
    show_full_result_count = False  # counting every run on each page view gets slow
    exclude = ("variables", "inputs", "step_outputs")
    readonly_fields = (
        "orchestration",
        "version",
        "status",
        "current_stage",
        "record_type",
        "record_id",
        "record_label",
        "started_at",
        "ended_at",
        "started_by",
        "error",
        "recheck",
        "variables_pretty",
        "inputs_pretty",
        "step_outputs_pretty",
    )
    inlines = [StageRunInline, StepRunInline]

    @admin.display(description="variables")
    def variables_pretty(self, obj: Run) -> str:
        return pretty_json(obj.variables)

    @admin.display(description="inputs")
    def inputs_pretty(self, obj: Run) -> str:
        return pretty_json(obj.inputs)

    @admin.display(description="step outputs")
    def step_outputs_pretty(self, obj: Run) -> str:
        return pretty_json(obj.step_outputs)


@admin.register(StageRun)
class StageRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = ADMIN_CSS

    list_display = ("id", "run", "key", "status", "outcome", "started_at", "ended_at")
    list_filter = ("status",)
    list_select_related = ("run",)
    search_fields = ("=run__id", "key")
    raw_id_fields = ("run",)


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = ADMIN_CSS

    list_display = ("id", "run", "key", "kind", "status", "attempts", "exec_state", "started_at")
    list_filter = ("status", "kind", "exec_state")
    list_select_related = ("run",)
    search_fields = ("=run__id", "key")
    exclude = ("inputs", "outputs")
    readonly_fields = ("inputs_pretty", "outputs_pretty")

    @admin.display(description="inputs")
    def inputs_pretty(self, obj: StepRun) -> str:
        return pretty_json(obj.inputs)

    @admin.display(description="outputs")
    def outputs_pretty(self, obj: StepRun) -> str:
        return pretty_json(obj.outputs)


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = ADMIN_CSS

    list_display = ("id", "created_at", "run", "name", "stage", "step", "actor")
    list_filter = ("name",)
    list_select_related = ("run", "actor")
    search_fields = ("=run__id", "name")
    exclude = ("payload",)
    readonly_fields = ("payload_pretty",)
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the event log is append-only

    @admin.display(description="payload")
    def payload_pretty(self, obj: RunEvent) -> str:
        return pretty_json(obj.payload)


# --- API tokens -------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created here (or with `manage.py create_api_token`): the raw value is shown
    once on the page that answers the creation, never stored, never put in a message or cookie."""

    class Media:
        css = ADMIN_CSS

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "prefix")
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    raw_id_fields = ("user",)
    actions = ("revoke_tokens",)

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: Any) -> None:
        revoked = sum(services.api_token_revoke(token=t) for t in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        # The user a token acts as is fixed once it exists: make a new token instead.
        return (*self.readonly_fields, "user") if obj else self.readonly_fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request.user

        class TokenForm(form):  # type: ignore[valid-type,misc]
            def clean_user(self) -> Any:
                # A token acts with its user's permissions: one made for someone else is a way to
                # become them. Staff make tokens for themselves; superusers for anyone.
                user = self.cleaned_data["user"]
                if user is not None and user.pk != actor.pk and not actor.is_superuser:
                    raise ValidationError(
                        "Only a superuser can create a token for someone else: a token acts "
                        "with its user's permissions. Choose yourself."
                    )
                return user

        return TokenForm

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = services.api_token_create(user=obj.user, name=obj.name)
        obj.pk, obj.digest, obj.created_at = token.pk, token.digest, token.created_at
        obj.prefix, obj.expires_at = token.prefix, token.expires_at
        obj._state.adding = False
        request._api_token_raw = raw  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        raw = getattr(request, "_api_token_raw", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
            "raw": raw,
        }
        response = TemplateResponse(request, "admin/orchestration/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"  # the page holds a secret
        return response


@admin.register(OutboxEmail)
class OutboxEmailAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The email outbox: what is owed, sent or failed, with the error and the next try. Rows
    change only through delivery; the one write offered is retrying failed ones."""

    list_display = (
        "id",
        "kind",
        "status",
        "recipients",
        "subject",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "run",
        "work_item_id",
    )
    list_filter = ("status", "kind")
    search_fields = ("=idempotency_key", "=message_id", "=run__id", "=work_item_id", "subject")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("run", "step_run")
    actions = ["retry_failed"]
    readonly_fields = [f.name for f in OutboxEmail._meta.fields]

    @admin.display(description="to")
    def recipients(self, obj: OutboxEmail) -> str:
        return ", ".join(obj.to)

    @admin.action(description="Retry the selected failed emails")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[OutboxEmail]) -> None:
        if not request.user.has_perm("orchestration.change_outboxemail"):
            raise PermissionDenied
        n = outbox.outbox_retry(email_ids=queryset.values_list("pk", flat=True))
        messages.success(request, f"{n} failed email(s) will be tried again now.")


# --- Analytics rollups (orchestration/rollup.py): derived, read-only ---------------------------


@admin.register(AnalyticsRollup)
class AnalyticsRollupAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The Analytics page's figures per day (or month) and orchestration, rebuilt from the runs by
    the refresh; `manage.py analytics_refresh --rebuild` recomputes them all."""

    list_display = ("day", "whole_month", "orchestration", "version", "level", "stage", "step", "count")
    list_filter = ("level", "whole_month")
    list_select_related = ("orchestration", "version")
    search_fields = ("stage", "step", "orchestration__api_name")
    date_hierarchy = "day"
    show_full_result_count = False
    readonly_fields = [f.name for f in AnalyticsRollup._meta.fields]


@admin.register(RollupDirty)
class RollupDirtyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Days (and months) of runs whose rollup rows the next refresh rebuilds."""

    list_display = ("day", "whole_month", "orchestration", "marked_at")
    list_select_related = ("orchestration",)
    readonly_fields = ("day", "whole_month", "orchestration", "marked_at")


@admin.register(RollupState)
class RollupStateAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Where the refresh's scan of the run events stands."""

    list_display = ("id", "built_at", "refreshed_at")
    readonly_fields = ("checkpoints", "built_at", "refreshed_at")


# --- the builder (orchestration/builder/) and the definitions' audit log -----------------------


class DraftRevisionInline(ReadOnlyMixin, admin.TabularInline):
    model = DraftRevision
    extra = 0
    can_delete = False
    fields = ("number", "summary", "author", "created_at")
    readonly_fields = fields
    ordering = ("-number",)


@admin.register(Draft)
class DraftAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Orchestrations being built in the browser (/builder/), with every change."""

    list_display = ("id", "api_name", "revision", "created_by", "updated_at", "activated_version")
    list_select_related = ("created_by", "activated_version")
    search_fields = ("api_name",)
    readonly_fields = ("api_name", "documents", "revision", "base_version", "created_by", "activated_version")
    inlines = [DraftRevisionInline]


@admin.register(DraftRevision)
class DraftRevisionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "draft", "number", "summary", "author", "created_at")
    list_select_related = ("draft", "author")
    raw_id_fields = ("draft",)
    readonly_fields = ("draft", "number", "documents", "summary", "author", "created_at")


@admin.register(DefinitionEvent)
class DefinitionEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Who activated which version, and what it changed."""

    list_display = ("id", "name", "orchestration", "flow", "version_number", "actor", "created_at")
    list_filter = ("name",)
    list_select_related = ("orchestration", "flow", "actor")
    search_fields = ("orchestration__api_name", "flow__api_name", "name")
    readonly_fields = [f.name for f in DefinitionEvent._meta.fields]
