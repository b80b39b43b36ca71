"""A throwaway PostgreSQL server for tests and benches: Debian's binaries (tests/setup/
install-postgres.sh installs them), `initdb` in a temporary folder, `pg_ctl start` on 127.0.0.1
with a free port and its unix socket in that folder, a login role with a password, and a fresh
database per `new_database()`. Stopped (and its folder removed) on `stop()`.

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the Debian
package creates (through `runuser`), in a folder that user owns.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "labmate", "pg-test-pass"
SKIP_REASON = "install Debian's postgresql (make services)"
_BINARIES = ("initdb", "pg_ctl", "postgres")


def bin_dir() -> Path | None:
    """The folder of the newest installed server's initdb/pg_ctl/postgres, or None."""
    def version(folder: str) -> tuple:
        return tuple(int(n) for n in re.findall(r"\d+", folder)) or (0,)

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all(os.access(Path(folder) / name, os.X_OK) for name in _BINARIES):
            return Path(folder)
    found = [shutil.which(name) for name in _BINARIES]
    return Path(found[0]).parent if all(found) else None


def missing_reason() -> str | None:
    """Why no server can be started here (a skip reason), or None."""
    if bin_dir() is None:
        return f"PostgreSQL server binaries (initdb, pg_ctl) not found: {SKIP_REASON}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return f"running as root and there is no 'postgres' user to run the server as: {SKIP_REASON}"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` to start the server as 'postgres'"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """`PostgresServer(durable=False).start()`; `url` is its main database, `new_database()` a fresh one.

    durable=False turns fsync and synchronous commits off (fast tests); True keeps PostgreSQL's
    defaults (for benches)."""

    def __init__(self, durable: bool = False):
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError(missing_reason())
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="labmate-pg-"))
        self.data, self.socket_dir, self.log = self.root / "data", self.root / "sock", self.root / "server.log"
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        self._counter = itertools.count(1)
        self.url = ""

    # -- life cycle ------------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)

    def start(self) -> "PostgresServer":
        self.socket_dir.mkdir()
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        done = self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8", "--locale=C",
                         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        options = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.socket_dir}",
                   "-c max_connections=50", "-c shared_buffers=32MB"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for attempt in range(3):  # the free port may be taken in between: try another
            self.port = free_port()
            done = self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                             "-o", " ".join([f"-p {self.port}", *options]), "start")
            if done.returncode == 0:
                break
        else:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{self.log_tail()}")
        self.superuser_sql(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'",
                           f"CREATE DATABASE {USER} OWNER {USER}")
        self.url = self.url_of(USER)
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- databases -------------------------------------------------------------------------------

    def url_of(self, database: str, user: str = USER, password: str = PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def superuser_sql(self, *statements: str) -> None:
        """Run statements as the superuser, over the unix socket (trusted)."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def new_database(self) -> str:
        """The URL of a new, empty database owned by the test role."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        self.superuser_sql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url_of(name)


if __name__ == "__main__":  # a quick manual check: python -m tests.pg
    started = time.perf_counter()
    with PostgresServer() as server:
        print(f"started in {time.perf_counter() - started:.2f}s: {server.url}")
        begin = time.perf_counter()
        print(server.new_database(), f"({time.perf_counter() - begin:.3f}s)")
