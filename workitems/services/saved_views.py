"""Writes for saved views of My Work: a person names the search, filters and sort they are
looking at, and opens it again from a link. Each person's views are theirs alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from ..models import SavedFilter
from ..selectors_mywork import my_work_view

NAME_MAX_LENGTH = SavedFilter._meta.get_field("name").max_length or 80
QUERY_MAX_LENGTH = SavedFilter._meta.get_field("query").max_length or 1000
MAX_PER_USER = 30  # the views are pills above the table: more would bury it


def saved_view_create(*, user: Any, name: str, params: Mapping[str, str]) -> SavedFilter:
    """Save My Work's view `params` (search, filters, sort: anything else is ignored, and the
    values are read as the page reads them) for `user` under `name`.

    Raises ValidationError, saving nothing, for an empty or too long name, a name the user
    already gave another view (in any case: "Urgent" and "urgent" would be two pills nobody
    tells apart), a query too long to keep, or too many views."""
    if not user.is_authenticated:
        raise PermissionDenied("log in to save a view")
    name = " ".join(name.split())
    if not name:
        raise ValidationError("Give the view a name.")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            f"The name of a view has at most {NAME_MAX_LENGTH} characters (this one has {len(name)})."
        )
    query = my_work_view(params).query
    if len(query) > QUERY_MAX_LENGTH:
        raise ValidationError("This view is too long to save: shorten the search.")
    mine = SavedFilter.objects.filter(user=user)
    taken = f"You already have a saved view called “{name}”: choose another name, or delete that one first."
    if mine.filter(name__iexact=name).exists():
        raise ValidationError(taken)
    if mine.count() >= MAX_PER_USER:
        raise ValidationError(
            f"You have {MAX_PER_USER} saved views, the most there can be: delete one first."
        )
    try:
        # A savepoint: the same name saved twice at once (a double click) fails on the unique
        # constraint without breaking a surrounding transaction.
        with transaction.atomic():
            return SavedFilter.objects.create(user=user, name=name, query=query)
    except IntegrityError:
        raise ValidationError(taken) from None


def saved_view_delete(*, saved: SavedFilter, user: Any) -> None:
    """Delete one of `user`'s saved views (another person's is refused)."""
    if saved.user_id != user.pk:
        raise PermissionDenied("this saved view is not yours")
    saved.delete()
