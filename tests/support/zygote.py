"""Streamlit servers forked from one process that has already imported the app.

Each e2e test starts its own `streamlit run serve.py`: its own database copy, port and mail
server. Importing Streamlit and ClinicDesk cost each of those servers about three CPU-seconds
before it answered its first page, on a machine the test run keeps busy. A zygote imports them
once per test worker and forks a server per test. The child is a new process with the test's
environment, folder and output file, and it runs Streamlit's own command line
(`streamlit run …`), as `python -m streamlit` would. Only the imports are shared.

    with Zygote(["serve"], cwd=ROOT) as zygote:
        pid = zygote.spawn(["run", "serve.py", "--server.port", "8600"], ROOT, env, log_path)

The zygote itself: `python -m tests.support.zygote MODULE…` imports the modules, says "ready",
then forks once per request line (JSON) and answers with the child's process id.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Self

# A process may only fork while it has one thread. Without these, importing NumPy starts
# OpenBLAS's thread pool and importing pyarrow starts jemalloc's background thread; the
# servers then compute on one BLAS thread, as `make test` asks anyway (OMP_NUM_THREADS=1).
# Streamlit's warnings about caches declared outside a running app are noise here.
SINGLE_THREADED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
    "STREAMLIT_LOGGER_LEVEL": "error",
}


class Zygote:
    """A process that has imported `preload` and forks on request; a context manager."""

    def __init__(self, preload: list[str], *, cwd: str | os.PathLike[str]) -> None:
        self.preload = preload
        self.cwd = cwd
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote", *self.preload],
            cwd=self.cwd,
            env={**os.environ, **SINGLE_THREADED},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if (said := self._process.stdout.readline().strip()) != "ready":
            self.stop()
            raise RuntimeError(f"the Streamlit zygote did not start: {said or 'see above'}")
        return self

    def spawn(
        self, args: list[str], cwd: str | os.PathLike[str], env: dict[str, str], output: Path
    ) -> int:
        """Fork `streamlit ARGS…` in `cwd` with exactly `env`, stdout and stderr appended to
        `output`; returns its process id. It leads its own session (process group)."""
        request = {"args": args, "cwd": str(cwd), "env": env, "output": str(output)}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply = self._process.stdout.readline()
        if not reply:
            raise RuntimeError(f"the Streamlit zygote exited ({self._process.poll()})")
        return json.loads(reply)["pid"]

    def stop(self) -> None:
        if self._process is not None:
            self._process.stdin.close()  # the zygote ends at the end of its input
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stdout.close()
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _serve(preload: list[str]) -> None:
    for name in preload:
        importlib.import_module(name)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        print(f"{threads} threads after the imports; a fork would lose all but one", flush=True)
        return
    if declared := _components():  # registered only when imported during a page run
        print(f"preloaded Streamlit components would stay unregistered: {declared}", flush=True)
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the servers
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_streamlit(request)
        print(json.dumps({"pid": pid}), flush=True)


def _components() -> list[str]:
    from streamlit.components.v1.custom_component import CustomComponent

    return sorted(
        value.name
        for module in list(sys.modules.values())
        for value in list(getattr(module, "__dict__", {}).values())
        if isinstance(value, CustomComponent)
    )


def _run_streamlit(request: dict) -> None:
    """In the child: become the requested process, run Streamlit's command line, never return."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        output = os.open(request["output"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        sys.stdout.reconfigure(line_buffering=True)
        sys.argv = ["streamlit", *request["args"]]
        from streamlit.web import cli

        cli.main(prog_name="streamlit")
        code = 0
    except SystemExit as stopped:
        code = stopped.code if isinstance(stopped.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1:])
