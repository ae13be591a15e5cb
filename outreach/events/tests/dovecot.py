"""A real IMAP server for the tests: Debian's dovecot, started as a foreground process on a
free loopback port with a configuration written here (no system service)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def available() -> str | None:
    """None when dovecot can run here, else why not."""
    if not Path(DOVECOT).exists():
        return "dovecot is not installed (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "dovecot's privilege separation needs the tests to run as root"
    return None


@dataclass
class ImapServer:
    host: str
    port: int
    password: str
    root: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    users: list[str],
    password: str = "imap-pass",  # noqa: S107
    *,
    introspection_url: str = "",
) -> ImapServer:
    """dovecot with ``users`` (PLAIN/LOGIN with ``password``); with ``introspection_url``
    also SASL XOAUTH2, each bearer token checked by dovecot's ``oauth2`` passdb against that
    RFC 7662 introspection endpoint."""
    root = Path(tempfile.mkdtemp(prefix="outreach-dovecot-"))
    root.chmod(0o755)  # mail processes run as nobody and must reach their homes
    nobody = pwd.getpwnam("nobody")
    home = root / "home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    (root / "passwd").write_text("".join(f"{user}:{{PLAIN}}{password}\n" for user in users))
    port = _free_port()
    oauth2_passdb = ""
    mechanisms = "plain login"
    if introspection_url:
        mechanisms += " xoauth2"
        (root / "oauth2.conf.ext").write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {introspection_url}\n"
            "force_introspection = yes\n"
            "username_attribute = email\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        oauth2_passdb = (
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n"
            f"  args = {root}/oauth2.conf.ext\n}}\n"
        )
    config = root / "dovecot.conf"
    config.write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = outreach-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
{oauth2_passdb}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={home}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = ImapServer("127.0.0.1", port, password, root, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"dovecot exited: {err} {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("dovecot did not start listening within 15 s")
