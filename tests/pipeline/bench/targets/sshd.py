"""A real OpenSSH server on 127.0.0.1 for tests: throwaway keys, random port, stops itself."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
LIFETIME_S = 300  # the server is killed after this even if a test forgets it


@dataclass(frozen=True)
class Sshd:
    port: int
    user: str
    identity: Path
    options: tuple[str, ...]  # ssh -o options: trust this server's throwaway host key

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


@contextlib.contextmanager
def loopback_sshd(tmp: Path) -> Iterator[Sshd]:
    """Start ``sshd -D`` on 127.0.0.1 with keys in ``tmp``; stop it on exit."""
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        raise FileNotFoundError("openssh-server / openssh-client not installed")
    user = os.environ.get("USER") or subprocess.run(
        ["id", "-un"], capture_output=True, text=True, check=True
    ).stdout.strip()
    _keygen(tmp / "host_key")
    _keygen(tmp / "client_key")
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    port = _free_port()
    # sshd insists on its privilege-separation directory (the openssh-server package's
    # service unit creates it at boot; a container or CI machine may not have run it).
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    config = tmp / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {tmp / 'host_key'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        "PermitRootLogin prohibit-password", f"PidFile {tmp / 'sshd.pid'}",
        "LogLevel ERROR", "",
    ]))  # fmt: skip
    # timeout(1) bounds the server's life even if this process dies before cleaning up.
    with open(tmp / "sshd.log", "w") as log:
        proc = subprocess.Popen(
            ["timeout", str(LIFETIME_S), SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        _wait_listening(port, proc, tmp / "sshd.log")
        yield Sshd(
            port=port,
            user=user,
            identity=tmp / "client_key",
            options=("StrictHostKeyChecking=no", f"UserKnownHostsFile={tmp / 'known_hosts'}"),
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text().strip()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("sshd did not start listening within 15 s")
