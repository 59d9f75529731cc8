"""Keeps one job consumer (`python -m bot jobs`) running beside a web process.

A child process rather than threads: rendering and ngrok calls then never share a GIL with
the acks. If it dies it is started again after a short pause; on shutdown it gets SIGTERM
and time to finish the jobs it is running (huey's graceful stop), then SIGKILL.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

log = logging.getLogger("ngrok_ops.supervisor")
RESTART_PAUSE_SECONDS = 1.0


class ConsumerSupervisor:
    def __init__(self, command: list[str] | None = None) -> None:
        self._command = command or [sys.executable, "-m", "bot", "jobs"]
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="consumer-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self._process = subprocess.Popen(self._command)
                log.info("started the job consumer (pid %d)", self._process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error("the job consumer exited with %s; starting it again", code)
            if self._stopping.wait(RESTART_PAUSE_SECONDS):
                return
            self._spawn()

    def stop(self, timeout: float = 25.0) -> None:
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the job consumer did not stop within %.0f s; killing it", timeout)
            process.kill()
            process.wait()
