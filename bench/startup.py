"""Start-up time of the studio: from `python app.py` to the UI answering in a browser's first requests.

    python bench/startup.py [--runs 5]

Each run starts a fresh process (empty LIPSYNC_HOME, free port) and times until both `GET /` and
`GET /config` (what the page loads first) answer 200. Target: <= 5 s on a 2-core machine.
Beside it, each run times a bare `python -c "import gradio"`, and the same import with the studio's
stub-generation skip (`lipsync.ui.gradio_import`), the floor the studio cannot go below, so that numbers
from a busy machine can still be compared.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(timeout: float = 120.0) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="lipsync-startup-") as home:
        env = {**os.environ, "LIPSYNC_HOME": home}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - started < timeout:
                if proc.poll() is not None:
                    raise SystemExit(f"app.py exited with {proc.returncode}")
                try:
                    if all(httpx.get(url + path, timeout=5).status_code == 200 for path in ("/", "/config")):
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            raise SystemExit(f"not ready after {timeout} s")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def gradio_import(skip_stubs: bool) -> float:
    code = "from lipsync.ui import gradio_import; gradio_import.install(); import gradio" if skip_stubs \
        else "import gradio"
    started = time.perf_counter()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    one_run()  # warm the OS file cache and Python's bytecode cache; not counted
    times, bare, floors = [], [], []
    for _ in range(args.runs):
        times.append(one_run())
        bare.append(gradio_import(skip_stubs=False))
        floors.append(gradio_import(skip_stubs=True))
    median = statistics.median(times)
    print(f"startup to ready: median {median:.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
          f"over {len(times)} runs ({os.cpu_count()} cores); target <= {TARGET_S:.0f} s")
    print(f"bare `import gradio`: median {statistics.median(bare):.2f} s, min {min(bare):.2f} s; "
          f"with the stub skip: median {statistics.median(floors):.2f} s, min {min(floors):.2f} s")
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
