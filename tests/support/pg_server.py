"""A throwaway PostgreSQL server for tests and benchmarks (initdb + pg_ctl in a temp folder).

Debian's binaries live in /usr/lib/postgresql/<version>/bin (``.ci/run`` installs them);
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user. It
listens on a free loopback port with trust authentication and is removed on ``stop()``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .live_servers import free_port


def pg_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found and Path(found).with_name("initdb").exists():
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class PgServer:
    bin_dir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(_as_server_user(command), capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        result = self._ctl("-w", "-l", str(self.root / "server.log"), "-o", options, "start", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop", check=False)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (dropping every connection), stay down ``down_s`` seconds, start again."""
        self.stop("immediate")
        time.sleep(down_s)
        self.start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def log_tail(self, chars: int = 2000) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PgServer:
    """initdb a fresh cluster in a temp folder and start it; raises RuntimeError when it cannot."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="face-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PgServer(bin_dir, root, free_port())
    command = [
        str(bin_dir / "initdb"),
        "-D",
        str(server.data),
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--locale=C.UTF-8",
    ]
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {result.stderr}")
    server.start()
    return server
