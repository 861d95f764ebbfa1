"""Run a fake as another process and talk to it through its control endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeProcess:
    """A fake served by another process: ``python -m tests.fakes.serve NAME``.

    ``with FakeProcess("twilio", auth_token="t") as fake: fake.base_url; fake.requests()``.
    Options become ``--option key=value``. The process is terminated on exit.
    """

    def __init__(self, name: str, *, latency: float = 0.0, **options: str) -> None:
        self.name = name
        self.latency = latency
        self.options = options
        self.port: int | None = None
        self._proc: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("fake process is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        cmd = [sys.executable, "-m", "tests.fakes.serve", self.name, "--port", "0", "--print-port"]
        if self.latency:
            cmd += ["--latency", str(self.latency)]
        for key, value in self.options.items():
            cmd += ["--option", f"{key}={value}"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line.strip().isdigit() or self._proc.poll() is not None:
                break
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"fake process {self.name} did not report its port")
        self.port = int(line)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
        self._proc = None
        self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/_fake/requests?since={since}")  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_fake/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/_fake/reset", {})

    def inject(self, kind: str, n: int = 1, **spec: Any) -> None:
        self._call("POST", "/_fake/faults", {"kind": kind, "n": n, **spec})
