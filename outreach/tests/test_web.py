"""The web side over real HTTP: health check, login wall, admin, and `outreach run` itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 20.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2, allow_redirects=False)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.django_db
def test_it_answers_healthz_without_login(live_server: object) -> None:
    response = requests.get(f"{live_server}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_the_login_page(live_server: object) -> None:
    response = requests.get(f"{live_server}/", timeout=5, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/?next=/")
    admin = requests.get(f"{live_server}/admin/", timeout=5, allow_redirects=False)
    assert admin.status_code == 302 and "/admin/login/" in admin.headers["Location"]
    login = requests.get(f"{live_server}/admin/login/", timeout=5)
    assert login.status_code == 200 and 'name="password"' in login.text


@pytest.mark.django_db
def test_an_admin_logs_in_and_sees_the_overview(live_server: object) -> None:
    get_user_model().objects.create_superuser("boss", "", "correct horse")
    session = requests.Session()
    page = session.get(f"{live_server}/accounts/login/", timeout=5)
    assert page.status_code == 200
    response = session.post(
        f"{live_server}/accounts/login/",
        data={
            "username": "boss",
            "password": "correct horse",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/",
        },
        headers={"Referer": f"{live_server}/accounts/login/"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.url == f"{live_server}/"
    assert "boss" in response.text


@pytest.mark.django_db
def test_ensure_admin_uses_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTREACH_ADMIN_PASSWORD", "from-env-123")
    call_command("ensure_admin", stdout=StringIO())
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.check_password("from-env-123")


@pytest.mark.django_db
def test_ensure_admin_generates_and_prints_a_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTREACH_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = out.getvalue().split("password: ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert password not in again.getvalue()


def _spawn_run(tmp_path: Path, database_url: str, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "OUTREACH_VAR_DIR": str(tmp_path / "var"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "outreach", "run", "--bind", f"127.0.0.1:{port}", "--no-loops"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_outreach_run_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    database = tmp_path / "run.sqlite3"
    url = f"sqlite:///{database}"
    subprocess.run(
        [sys.executable, "-m", "outreach", "migrate", "-v0"],
        env={**os.environ, "DATABASE_URL": url, "OUTREACH_VAR_DIR": str(tmp_path / "var")},
        cwd=tmp_path,
        check=True,
    )
    port = free_port()
    proc = _spawn_run(tmp_path, url, port)
    try:
        response = wait_for(f"http://127.0.0.1:{port}/healthz")
        assert response.status_code == 200
        login = requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
        assert login.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "outreach stopped" in output


def test_healthz_answers_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    # Nothing listens on the database port: the server starts, the database check fails.
    proc = _spawn_run(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", port)
    try:
        response = wait_for(f"http://127.0.0.1:{port}/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "error"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
