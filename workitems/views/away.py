"""Out of office (/account/out-of-office/): a person says when they are away and who takes their
new work meanwhile, and can hand their open items over at once; their manager can do the same for
them (?user=<username>). workitems/delegation.py does the work and says who may."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from orchestration.people import person_label, person_name

from .. import delegation, picker
from ..models import OutOfOffice


class AwayForm(forms.Form):
    starts_on = forms.DateField(
        label="First day away", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    ends_on = forms.DateField(
        label="Last day away", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    pick = forms.CharField(required=False, max_length=40)
    delegate = forms.CharField(label="Who takes your work", required=False, max_length=150)

    def delegate_user(self) -> Any:
        """The person picked (token), or typed exactly; a message on the field otherwise."""
        token = (self.cleaned_data.get("pick") or "").strip()
        typed = (self.cleaned_data.get("delegate") or "").strip()
        if token:
            choice = picker.resolve_token(token, kinds=("user",))
            if choice is None:
                self.add_error("delegate", "That person can no longer be chosen: pick again from the list.")
            return choice.obj if choice else None
        if not typed:
            return None
        found = picker.resolve_text(typed, kinds=("user",))
        if len(found) == 1:
            return found[0].obj
        self.add_error(
            "delegate",
            picker.ambiguous_message(typed, found)
            if found
            else picker.not_found_message(typed, kinds=("user",)),
        )
        return None


def _subject(request: HttpRequest) -> Any:
    """Whose absence the page is about: the viewer, or ?user= someone they may manage."""
    username = (request.GET.get("user") or request.POST.get("user") or "").strip()
    if not username or username == request.user.get_username():
        return request.user
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}, is_active=True).first()
    if user is None or not delegation.may_manage(request.user, user):
        raise Http404("no such person among those you manage")
    return user


def _url(user: Any, viewer: Any) -> str:
    url = reverse("workitems:out_of_office")
    return url if user.pk == viewer.pk else f"{url}?{urlencode({'user': user.get_username()})}"


@login_required
@require_http_methods(["GET", "POST"])
def out_of_office(request: HttpRequest) -> HttpResponse:
    user = _subject(request)
    current = OutOfOffice.objects.filter(user=user).select_related("delegate", "set_by").first()
    form = AwayForm(request.POST or None)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "save")
        try:
            if action == "clear":
                delegation.out_of_office_clear(user=user, actor=request.user)
                messages.success(
                    request,
                    f"{_whose(user, request.user)} out of office is cleared: new work goes to them again.",
                )
                return HttpResponseRedirect(_url(user, request.user))
            if action == "hand_over":
                moved = delegation.hand_over(user=user, actor=request.user)
                to = person_name(current.delegate) if current else "the delegate"
                messages.success(request, f"{moved} open item{'s' * (moved != 1)} handed over to {to}.")
                return HttpResponseRedirect(_url(user, request.user))
            if form.is_valid():
                delegate = form.delegate_user()
                if not form.errors:
                    row = delegation.out_of_office_set(
                        user=user,
                        starts_on=form.cleaned_data["starts_on"],
                        ends_on=form.cleaned_data["ends_on"],
                        delegate=delegate,
                        actor=request.user,
                    )
                    messages.success(
                        request,
                        f"Saved: from {row.starts_on:%Y-%m-%d} to {row.ends_on:%Y-%m-%d}, new work for "
                        f"{person_name(user)} goes to {person_name(row.delegate)}.",
                    )
                    return HttpResponseRedirect(_url(user, request.user))
        except ValidationError as exc:
            for field, errs in (
                exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]
            ):
                for e in errs:
                    form.add_error(field if field in form.fields else None, e)
        except PermissionDenied:
            raise
        status = 400
    return render(
        request,
        "workitems/out_of_office.html",
        {
            "subject": user,
            "is_self": user.pk == request.user.pk,
            "current": current,
            "is_away_now": bool(current and current.starts_on <= delegation.today() <= current.ends_on),
            "open_items": delegation.open_items_of(user).count(),
            "form": form,
            "team": delegation.team_of(request.user),
            "delegate_text": form["delegate"].value()
            if form.is_bound
            else (person_label(current.delegate) if current else ""),
            "delegate_token": form["pick"].value()
            if form.is_bound
            else (f"user:{current.delegate_id}" if current else ""),
        },
        status=status,
    )


def _whose(user: Any, viewer: Any) -> str:
    return "Your" if user.pk == viewer.pk else f"{person_name(user)}'s"
