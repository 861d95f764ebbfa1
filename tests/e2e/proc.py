"""Run Order Bell as real processes for end-to-end tests: CLI commands, servers, workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "orderbell.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERBELL_")}
    env["ORDERBELL_DATA_DIR"] = str(data_dir)
    if database_url:
        env["ORDERBELL_DATABASE_URL"] = database_url
    env["ORDERBELL_LOG_LEVEL"] = "warning"
    env.update(extra)
    return env


def cli(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"orderbell {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Process:
    """An ``orderbell`` subcommand running in the background, output kept in a file."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:
        self.args = args
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [*CLI, *args], env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a machine dies."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


class Server(Process):
    def __init__(
        self, env: dict[str, str], command: str = "serve", *, log: Path, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        super().__init__(env, command, "--port", str(self.port), log=log)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"server exited early:\n{self.output()}")
            try:
                status, _ = http("GET", f"{self.base}/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
            ctype = resp.headers.get("content-type", "")
            return resp.status, (json.loads(payload) if "json" in ctype else payload.decode())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        ctype = exc.headers.get("content-type", "")
        return exc.code, (
            {**json.loads(payload), "_content_type": ctype} if "json" in ctype else payload.decode()
        )
