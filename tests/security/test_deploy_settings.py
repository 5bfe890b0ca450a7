"""Production settings from the environment: `check --deploy` is clean with exactly the
environment README.md documents, HTTPS=true sets the secure defaults, a web process refuses the
development SECRET_KEY, and the throttling/token limits come from the environment. Each runs
Django in a subprocess with only the environment it is given."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_production_env() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- production-env -->\n```sh\n(.*?)```\n<!-- /production-env -->", text, re.S)
    assert block, "README.md lost its production environment block"
    pairs = [line.split("=", 1) for line in block.group(1).splitlines() if line.strip()]
    # The checks connect to nothing; should one ever try, it must stay on this machine.
    return {k: re.sub(r"@[a-z.]+\.example\.com:", "@127.0.0.1:", v) for k, v in pairs}


def django(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` with Django set up on `env` alone (plus what Python needs to run)."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


SETUP = (
    "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup()\n"
)


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    env = readme_production_env()
    assert env["DEBUG"] == "false" and env["HTTPS"] == "true"
    # The one file the environment names must exist: write a key where it says.
    key_file = tmp_path / "secret_key"
    key_file.write_text(secrets.token_urlsafe(50) + "\n")
    env["SECRET_KEY_FILE"] = str(key_file)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_complains_without_the_https_switch(tmp_path):
    env = readme_production_env()
    env.pop("HTTPS")
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env.pop("SECRET_KEY_FILE")
    result = django(
        SETUP + "from django.core.management import call_command\n"
        "call_command('check', deploy=True, fail_level='WARNING')",
        env,
        tmp_path,
    )
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


PRINT_SETTINGS = SETUP + (
    "from django.conf import settings as s\n"
    "print(json.dumps({k: getattr(s, k, None) for k in ["
    "'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
    "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SECURE_PROXY_SSL_HEADER', "
    "'AXES_FAILURE_LIMIT', 'API_TOKEN_DAYS', 'MAX_REQUEST_BYTES', 'AXES_IPWARE_PROXY_COUNT']} | "
    "{'cooloff_minutes': s.AXES_COOLOFF_TIME.total_seconds() / 60}))"
)


def settings_with(env: dict[str, str], tmp_path: Path) -> dict[str, object]:
    result = django("import json\n" + PRINT_SETTINGS, env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_https_switch_and_each_setting_on_its_own(tmp_path):
    off = settings_with({}, tmp_path)
    assert off["SECURE_SSL_REDIRECT"] is False and off["SESSION_COOKIE_SECURE"] is False
    assert off["SECURE_HSTS_SECONDS"] == 0 and off["SECURE_PROXY_SSL_HEADER"] is None
    on = settings_with({"HTTPS": "true", "TRUST_X_FORWARDED_PROTO": "true"}, tmp_path)
    assert on["SECURE_SSL_REDIRECT"] is True
    assert on["SESSION_COOKIE_SECURE"] is True and on["CSRF_COOKIE_SECURE"] is True
    assert on["SECURE_HSTS_SECONDS"] == 31536000
    assert on["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True and on["SECURE_HSTS_PRELOAD"] is True
    assert on["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    mixed = settings_with(
        {"HTTPS": "true", "SECURE_HSTS_SECONDS": "300", "SECURE_HSTS_PRELOAD": "false"}, tmp_path
    )
    assert (mixed["SECURE_HSTS_SECONDS"], mixed["SECURE_HSTS_PRELOAD"]) == (300, False)


def test_throttling_token_and_size_limits_come_from_the_environment(tmp_path):
    defaults = settings_with({}, tmp_path)
    assert (defaults["AXES_FAILURE_LIMIT"], defaults["cooloff_minutes"], defaults["API_TOKEN_DAYS"]) == (
        5,
        15,
        90,
    )
    assert defaults["AXES_IPWARE_PROXY_COUNT"] is None
    custom = settings_with(
        {
            "AXES_FAILURE_LIMIT": "3",
            "AXES_COOLOFF_MINUTES": "60",
            "API_TOKEN_DAYS": "30",
            "MAX_REQUEST_BYTES": "1000000",
            "PROXY_COUNT": "1",
        },
        tmp_path,
    )
    assert (custom["AXES_FAILURE_LIMIT"], custom["cooloff_minutes"], custom["API_TOKEN_DAYS"]) == (3, 60, 30)
    assert (custom["MAX_REQUEST_BYTES"], custom["AXES_IPWARE_PROXY_COUNT"]) == (1000000, 1)


@pytest.mark.parametrize("debug", ["false", ""])
def test_a_web_process_without_debug_refuses_the_development_key(tmp_path, debug):
    env = {"DEBUG": debug} if debug else {}
    result = django("import config.wsgi", env, tmp_path)
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: SECRET_KEY is not set: production (DEBUG is off) needs SECRET_KEY"
        in result.stderr
    )
    assert "SECRET_KEY_FILE" in result.stderr


def test_a_web_process_starts_with_a_key_or_in_debug(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_urlsafe(50))
    for env in (
        {"SECRET_KEY_FILE": str(key_file)},
        {"SECRET_KEY": secrets.token_urlsafe(50)},
        {"DEBUG": "true"},
    ):
        result = django("import config.wsgi; print('started')", env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("started")
    # What the key file holds is the key (without its trailing newline).
    result = django(
        SETUP + "from django.conf import settings; print(settings.SECRET_KEY)",
        {"SECRET_KEY_FILE": str(key_file)},
        tmp_path,
    )
    assert result.stdout.strip().splitlines()[-1] == key_file.read_text()
