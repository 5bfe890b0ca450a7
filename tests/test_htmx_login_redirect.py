from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_htmx_request_with_expired_session_redirects_the_whole_page(client):
    resp = client.get(
        "/my-work/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/records/case/1/?item=3"},
    )
    assert resp.status_code == 200
    assert resp["HX-Redirect"] == "/login/?next=/records/case/1/%3Fitem%3D3"


@pytest.mark.django_db
def test_plain_request_still_gets_the_normal_login_redirect(client):
    resp = client.get("/my-work/")
    assert resp.status_code == 302
    assert resp["Location"].startswith("/login/?next=/my-work/")
