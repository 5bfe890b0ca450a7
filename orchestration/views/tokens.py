"""Your API tokens: list them, create one (shown once) and revoke one. Every logged-in user has
this page for their own tokens only; admins manage everyone's in the Django admin."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors
from ..forms import ApiTokenCreateForm
from ..models import ApiToken
from ..services import api_token_create, api_token_revoke


def _own_token(request: HttpRequest, pk: int) -> ApiToken:
    """The viewer's token `pk`; 404 for anyone else's, so ids of other tokens reveal nothing."""
    return get_object_or_404(ApiToken, pk=pk, user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    created: tuple[ApiToken, str] | None = None
    form = ApiTokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        days = form.lifetime_days()
        created = api_token_create(
            user=request.user, name=form.cleaned_data["name"], days=days, never_expires=days is None
        )
        form = ApiTokenCreateForm()
    response = render(
        request,
        "orchestration/account/tokens.html",
        {
            "tokens": selectors.api_tokens_of(request.user),
            "form": form,
            "created": created[0] if created else None,
            "raw": created[1] if created else None,
        },
    )
    # The answer to a creation holds the secret: no cache, no back-button copy.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = _own_token(request, pk)
    if api_token_revoke(token=token):
        messages.success(request, f"The token “{token.name}” is revoked: it no longer works.")
    else:
        messages.info(request, f"The token “{token.name}” was already revoked.")
    return redirect("account_tokens")
