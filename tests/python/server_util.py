"""Starts `halfbyte serve` for a test on a free loopback port (--port 0: the server
binds, then prints the port) and stops it with SIGTERM (its clean shutdown)."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from test_cli import installed_cli

EXE = installed_cli()
REPO = os.path.join(os.path.dirname(__file__), "..", "..")
SMOLLM2 = os.environ.get("HALFBYTE_SMOLLM2", os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
MINILM = os.environ.get("HALFBYTE_MINILM", os.path.join(REPO, "models", "all-MiniLM-L6-v2"))
LLM_ID = "SmolLM2-135M-Instruct.Q4_1"


def server_available() -> bool:
    if EXE is None or not os.path.exists(SMOLLM2):
        return False
    out = subprocess.run([EXE, "serve", "--help"], capture_output=True, text=True, timeout=60)
    return out.returncode == 0


class Server:
    def __init__(self, *args: str, timeout: float = 120.0):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="halfbyte-serve-", suffix=".log", delete=False)
        cmd = [EXE, "serve", "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, text=True)
        deadline = time.time() + timeout
        self.port = None
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"halfbyte serve exited with {self.proc.returncode}:\n{self.output()}")
            m = re.search(r"on http://127\.0\.0\.1:(\d+) ", self.output())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("halfbyte serve did not start:\n" + self.output())
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None, timeout=120):
        """(status, headers, body bytes) without raising on 4xx/5xx."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def metric(self, name: str) -> float:
        _, _, body = self.request("GET", "/metrics")
        m = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
        return float(m.group(1))

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
