"""Security headers on every kind of page: CSP without inline script or eval, nosniff,
Referrer-Policy, X-Frame-Options DENY, Cross-Origin-Opener-Policy; HSTS only over TLS."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
    "object-src 'none'"
)


def pages(client: Client, personas) -> dict[str, object]:  # type: ignore[no-untyped-def]
    anonymous = {"login": client.get("/login/"), "api": client.get("/api/openapi.json")}
    client.force_login(personas.admin)
    return {
        **anonymous,
        "home": client.get("/"),
        "my work": client.get("/my-work/"),
        "runs": client.get("/monitor/runs/"),
        "tokens": client.get("/account/tokens/"),
        "admin": client.get("/admin/"),
        "404": client.get("/no-such-page/"),
    }


def test_every_page_sends_the_security_headers(personas):
    for name, response in pages(Client(), personas).items():
        assert response.status_code in {200, 404}, name
        assert response["Content-Security-Policy"] == CSP, name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert response["Referrer-Policy"] == "same-origin", name
        assert response["X-Frame-Options"] == "DENY", name
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", name
        assert "Strict-Transport-Security" not in response, name  # plain HTTP here


def test_the_policy_forbids_inline_script_and_eval():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert "'unsafe-inline'" not in directives["style-src"]


def test_hsts_is_sent_over_tls_when_configured(personas, settings):
    """What HTTPS=true sets (tests/security/test_deploy_settings.py checks the switch itself)."""
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = Client().get("/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "Strict-Transport-Security" not in Client().get("/login/")  # never over plain HTTP


def test_no_template_has_inline_script_style_or_handlers():
    """What the policy would refuse in a browser, caught in the source (the browser test
    tests/browser/test_csp.py catches the rest). Email templates are not pages."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    templates = [*root.glob("templates/**/*.html"), *root.glob("*/templates/**/*.html")]
    assert len(templates) > 20
    for path in templates:
        if "/email/" in str(path):
            continue
        text = path.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)",
            r"\sstyle=",
            r"\son[a-z]+=",
            r"hx-on",
            r"<style",
            r"javascript:",
        ):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(root)}: {pattern}")
    assert offenders == []
