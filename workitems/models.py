"""Work items: the human side of interactive steps, and the queues that hold them."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from orchestration.models import Orchestration, OrchestrationVersion, Run, StepRun
from orchestration.people import person_name


class Queue(models.Model):
    api_name = models.SlugField(max_length=80, unique=True)
    label = models.CharField(max_length=200)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="work_queues")
    groups = models.ManyToManyField(Group, blank=True, related_name="work_queues")

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label


class WorkItemStatus(models.TextChoices):
    ASSIGNED = "assigned", "Assigned"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


class Priority(models.IntegerChoices):
    """How urgent an item is: My Work and Work Items sort by it (higher first)."""

    LOW = 1, "Low"
    NORMAL = 2, "Normal"
    HIGH = 3, "High"
    URGENT = 4, "Urgent"


class WorkItem(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="work_items")
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="work_items")
    # The record the run is anchored on, copied so the Work Guide finds items with one query.
    record_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    record_id = models.PositiveBigIntegerField(null=True, blank=True)
    label = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=WorkItemStatus.choices, default=WorkItemStatus.ASSIGNED)
    assignee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assignee_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assignee_queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outputs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    # When the current assignment began (creation, then each reassignment): a step's SLA rules
    # whose time came before it were the previous assignee's, and do not fire (workitems/sla.py).
    assigned_at = models.DateTimeField(null=True, blank=True)
    # When the next of its step's SLA rules is due to fire (None: none left): what the beat's
    # tick looks for, on a partial index of the open items that have one.
    next_rule_at = models.DateTimeField(null=True, blank=True)
    # The person the item was for, when it went to their delegate because they were away.
    delegated_from = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # 1 when created, +1 at each reassignment: the assignment emails' idempotency keys name it,
    # so a retried write of the same assignment's email is one row and a new assignee gets theirs.
    assignments = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(assignee_user__isnull=False, assignee_group__isnull=True, assignee_queue__isnull=True)
                    | Q(assignee_user__isnull=True, assignee_group__isnull=False, assignee_queue__isnull=True)
                    | Q(assignee_user__isnull=True, assignee_group__isnull=True, assignee_queue__isnull=False)
                ),
                name="workitem_one_assignee",
            ),
            # An open step has at most one open work item.
            models.UniqueConstraint(
                fields=["step_run"], condition=Q(status="assigned"), name="workitem_one_open_per_step"
            ),
        ]
        indexes = [
            models.Index(fields=["record_type", "record_id", "status"], name="wi_record_status"),
            models.Index(fields=["assignee_user", "status"], name="wi_user_status"),
            models.Index(fields=["assignee_group", "status"], name="wi_group_status"),
            models.Index(fields=["assignee_queue", "status"], name="wi_queue_status"),
            # The Work Items monitoring page (workitems/views/manage.py) pages by keyset in each
            # view's order; partial indexes keep the open ones small, as most items are closed.
            models.Index(fields=["-id"], condition=Q(status="assigned"), name="wi_open_id"),
            models.Index(fields=["created_at", "id"], condition=Q(status="assigned"), name="wi_open_created"),
            models.Index(
                fields=["due_at", "id"],
                condition=Q(status="assigned", due_at__isnull=False),
                name="wi_open_due",
            ),
            models.Index(
                fields=["-completed_at", "-id"], condition=Q(status="completed"), name="wi_completed_at"
            ),
            models.Index(
                fields=["next_rule_at", "id"],
                condition=Q(status="assigned", next_rule_at__isnull=False),
                name="wi_open_next_rule",
            ),
        ]
        permissions = [("reassign_workitem", "Can reassign work items")]

    def __str__(self) -> str:
        return self.label

    @property
    def assignee_label(self) -> str:
        if self.assignee_user_id:
            return person_name(self.assignee_user)
        if self.assignee_group_id:
            return f"group {self.assignee_group.name}"  # type: ignore[union-attr]
        return f"queue {self.assignee_queue.label}"  # type: ignore[union-attr]


class WorkItemDraft(models.Model):
    """What one person has typed into an item's screen flow so far, and the screen they are on.

    Kept on the server per (item, person) so that a reload, a second tab or another device
    resumes where they were, and so that input sent after someone else completed the item can
    still be shown back to them. Deleted when their own Finish completes the item."""

    item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    screen = models.PositiveSmallIntegerField(default=0)
    values = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "user"], name="workitem_draft_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"draft of item {self.item_id} by user {self.user_id}"


class WorkItemComment(models.Model):
    """A note on a work item, by one of its assignees or a manager: shown with the item's history
    to everyone who may see the item. Never edited; kept after the item closes."""

    MAX_LENGTH = 4000

    item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField(max_length=MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["item", "created_at"], name="wi_comment_item")]

    def __str__(self) -> str:
        return f"comment {self.pk} on item {self.item_id}"


class SavedFilter(models.Model):
    """A named view of My Work (search, filters, sort) one person saved for themselves: `query`
    is the page's query string, checked again each time it is opened."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="savedfilter_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class FiredRule(models.Model):
    """One firing of an SLA rule (a reminder, an escalation) on one item: the row is written in
    the transaction that does what the rule says, and its unique key (item, assignment, rule,
    occurrence) is what makes each firing happen once, whatever the number of beats, ticks and
    retries (workitems/sla.py)."""

    item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="fired_rules")
    assignment = models.PositiveIntegerField()
    rule = models.CharField(max_length=80)
    occurrence = models.PositiveSmallIntegerField()
    scheduled_for = models.DateTimeField()
    fired_at = models.DateTimeField(auto_now_add=True)
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["item", "scheduled_for", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "assignment", "rule", "occurrence"], name="firedrule_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} #{self.occurrence + 1} on item {self.item_id}"


class PersonProfile(models.Model):
    """Who a person's manager is: SLA rules escalate to them, and they may manage the person's
    out-of-office delegation."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="work_profile"
    )
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"profile of user {self.user_id}"


class GroupProfile(models.Model):
    """Who manages a group: SLA rules that notify "managers" of a group item reach them."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="work_profile")
    managers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="managed_groups")

    def __str__(self) -> str:
        return f"profile of group {self.group_id}"


class OutOfOffice(models.Model):
    """A person away from `starts_on` to `ends_on` (inclusive, in the site's time zone), whose new
    work goes to `delegate` meanwhile (workitems/delegation.py). Set by the person, or by their
    manager; one per person (the current or next absence)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="out_of_office"
    )
    starts_on = models.DateField()
    ends_on = models.DateField()
    delegate = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "out of office"
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")), name="ooo_ends_after_start"
            ),
            models.CheckConstraint(condition=~Q(user=models.F("delegate")), name="ooo_not_own_delegate"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} away {self.starts_on}..{self.ends_on}"


class WorkRollup(models.Model):
    """The work-item figures of one Analytics partition (orchestration/rollup.py: the runs of one
    orchestration started on one day), per version and step, rebuilt with the partition's other
    rows. Items that are done: `with_due` (canceled ones left out), `breached` (completed after
    their due time). Open items: `open_overdue`, those already past due when the row was built,
    `open_due`, the due times still ahead then, in epoch seconds, sorted (how many have passed
    depends on when the page is read), and `holders`, {"user:5" | "group:2" | "queue:1": open
    items}."""

    day = models.DateField()
    whole_month = models.BooleanField(default=False)  # sums of the month's day rows (day: its 1st)
    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(OrchestrationVersion, on_delete=models.CASCADE, related_name="+")
    stage = models.CharField(max_length=80)
    step = models.CharField(max_length=80)
    with_due = models.PositiveIntegerField(default=0)
    breached = models.PositiveIntegerField(default=0)
    open_overdue = models.PositiveIntegerField(default=0)
    open_due = models.JSONField(default=list, blank=True)
    holders = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["day", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "whole_month", "orchestration", "version", "stage", "step"],
                name="wrollup_once",
            ),
        ]
        indexes = [models.Index(fields=["orchestration", "day"], name="wrollup_orch_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.stage}/{self.step}"
