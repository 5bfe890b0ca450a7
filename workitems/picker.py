"""The people picker: users, groups and queues found by a few typed letters, for reassigning
work and for filtering it (static/picker.js draws it; htmx fetches the matches).

A match is chosen, never typed: the form sends its token (`user:12`, `group:3`, `queue:5`), so a
typo cannot reach a service. Without JavaScript the typed text is resolved by exact name
(`resolve_text`), and text that names no one or several gets the near matches as suggestions.

Each search is one query per kind asked for (at most three), whatever the number of people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, Value
from django.db.models.functions import Concat, Lower

from orchestration.people import person_label

from .models import Queue

KINDS = ("user", "group", "queue")
KIND_HINTS = {"user": "person", "group": "group", "queue": "queue"}
MAX_QUERY = 100
LIMIT = 8


@dataclass(frozen=True)
class Choice:
    kind: str  # "user", "group" or "queue"
    pk: int
    value: str  # what a filter's address carries: a username, a group name, a queue api name
    label: str  # how the person, group or queue reads: "Dana Whitfield (dana)", "Support"
    obj: Any

    @property
    def token(self) -> str:
        return f"{self.kind}:{self.pk}"

    @property
    def hint(self) -> str:
        return KIND_HINTS[self.kind]

    @property
    def described(self) -> str:
        """ "Dana Whitfield (dana)", "group Support", "queue Triage": a choice in a sentence."""
        return self.label if self.kind == "user" else f"{self.kind} {self.label}"


def parse_kinds(raw: str) -> tuple[str, ...]:
    """ "user,group" -> ("user", "group"); unknown words are dropped, nothing means all."""
    kinds = tuple(k for k in KINDS if k in {p.strip() for p in raw.split(",")})
    return kinds or KINDS


def _user_choice(user: Any) -> Choice:
    return Choice("user", user.pk, str(user.get_username()), person_label(user), user)


def _group_choice(group: Group) -> Choice:
    return Choice("group", group.pk, group.name, group.name, group)


def _queue_choice(queue: Queue) -> Choice:
    return Choice("queue", queue.pk, queue.api_name, queue.label, queue)


def _users() -> Any:
    User = get_user_model()
    return User._default_manager.filter(is_active=True)


def search(q: str, *, kinds: tuple[str, ...] = KINDS, limit: int = LIMIT) -> list[Choice]:
    """Active users whose username, first, last or full name contains `q` (any case), then groups
    and queues whose name contains it; `limit` of each, people first. An empty `q` lists the first
    of each, so the list opens on focus."""
    q = q.strip()[:MAX_QUERY]
    out: list[Choice] = []
    if "user" in kinds:
        User = get_user_model()
        users = _users().annotate(
            _full=Concat("first_name", Value(" "), "last_name"),
        )
        if q:
            users = users.filter(
                Q(**{f"{User.USERNAME_FIELD}__icontains": q})
                | Q(first_name__icontains=q)
                | Q(last_name__icontains=q)
                | Q(_full__icontains=q)
            )
        users = users.order_by(Lower("first_name"), Lower("last_name"), User.USERNAME_FIELD)
        out += [_user_choice(u) for u in users[:limit]]
    if "group" in kinds:
        groups = Group.objects.filter(name__icontains=q) if q else Group.objects.all()
        out += [_group_choice(g) for g in groups.order_by(Lower("name"))[:limit]]
    if "queue" in kinds:
        queues = (
            Queue.objects.filter(Q(label__icontains=q) | Q(api_name__icontains=q)) if q else Queue.objects
        )
        out += [_queue_choice(x) for x in queues.order_by(Lower("label"))[:limit]]
    return out


def resolve_token(token: str, *, kinds: tuple[str, ...] = KINDS) -> Choice | None:
    """The user, group or queue a picked token names, or None (unknown, inactive, malformed)."""
    kind, _, pk = token.strip().partition(":")
    if kind not in kinds or not pk.isdigit():
        return None
    if kind == "user":
        user = _users().filter(pk=int(pk)).first()
        return _user_choice(user) if user else None
    if kind == "group":
        group = Group.objects.filter(pk=int(pk)).first()
        return _group_choice(group) if group else None
    queue = Queue.objects.filter(pk=int(pk)).first()
    return _queue_choice(queue) if queue else None


def resolve_value(kind: str, value: str) -> Choice | None:
    """The choice a filter's address names (`user=dana`, `group=Support`, `queue=triage`)."""
    value = value.strip()
    if not value:
        return None
    if kind == "user":
        user = _users().filter(**{get_user_model().USERNAME_FIELD: value}).first()
        return _user_choice(user) if user else None
    if kind == "group":
        group = Group.objects.filter(name=value).first()
        return _group_choice(group) if group else None
    queue = Queue.objects.filter(Q(api_name=value) | Q(label=value)).first()
    return _queue_choice(queue) if queue else None


def resolve_text(text: str, *, kinds: tuple[str, ...] = KINDS) -> list[Choice]:
    """Every choice `text` names exactly (any case): a username, a full name, a picker label
    ("Dana Whitfield (dana)"), a group name, a queue's label or api name. One match is the answer;
    none or several is for the person to settle (see `suggestions`)."""
    text = text.strip()[:MAX_QUERY]
    if not text:
        return []
    if text.endswith(")") and "(" in text and "user" in kinds:  # a picker label, typed or pasted
        username = text.rsplit("(", 1)[1][:-1].strip()
        exact = resolve_value("user", username)
        if exact is not None:
            return [exact]
    found: list[Choice] = []
    if "user" in kinds:
        User = get_user_model()
        users = _users().annotate(_full=Lower(Concat("first_name", Value(" "), "last_name")))
        found += [
            _user_choice(u)
            for u in users.filter(Q(**{f"{User.USERNAME_FIELD}__iexact": text}) | Q(_full=text.lower()))[
                :LIMIT
            ]
        ]
    if "group" in kinds:
        found += [_group_choice(g) for g in Group.objects.filter(name__iexact=text)[:LIMIT]]
    if "queue" in kinds:
        queues = Queue.objects.filter(Q(api_name__iexact=text) | Q(label__iexact=text))
        found += [_queue_choice(x) for x in queues[:LIMIT]]
    return found


def suggestions(text: str, *, kinds: tuple[str, ...] = KINDS, limit: int = 5) -> list[Choice]:
    """Near matches for text that named no one: what contains its first word, or failing that its
    first three letters (a typo further on)."""
    text = text.strip()
    for probe in (text.split()[0] if text.split() else "", text[:3]):
        if probe:
            found = search(probe, kinds=kinds, limit=limit)
            if found:
                return found[:limit]
    return []


def not_found_message(text: str, *, kinds: tuple[str, ...] = KINDS) -> str:
    """ "No user, group or queue is called “dvae”. Did you mean Dave Smith (dave)?" """
    names = {"user": "user", "group": "group", "queue": "queue"}
    what = [names[k] for k in kinds]
    listed = what[0] if len(what) == 1 else f"{', '.join(what[:-1])} or {what[-1]}"
    message = f"No {listed} is called “{text.strip()}”."
    near = suggestions(text, kinds=kinds)
    if near:
        message += " Did you mean " + ", ".join(c.described for c in near) + "?"
    return message


def ambiguous_message(text: str, found: list[Choice]) -> str:
    return (
        f"“{text.strip()}” names more than one: "
        + ", ".join(c.described for c in found)
        + ". Pick one from the list."
    )
