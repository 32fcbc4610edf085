"""Soak of the REST API: many small jobs from concurrent clients, with a kill -9 and a restart midway.

    python bench/soak.py [--jobs 100] [--clients 5] [--kill-at 0.4]

A real server (`python -m lipsync.server`) on loopback, a fresh LIPSYNC_HOME, and one local HTTP server
that serves the media (~1 s espeak-ng speech, the bundled 512x512 portrait) and receives the webhooks.
Each client submits its share of the jobs, half by URL (JSON) and half as multipart uploads, each with a
webhook, and polls until done; when `--kill-at` of the jobs have finished, the server gets SIGKILL and is
started again, while the clients keep going (they retry until it answers).

Checks, all reported:
- every job ends completed, or failed with a reason (a job running at the kill fails with one);
- every output is a valid MP4 (H.264 video and AAC audio, decoded to the end, as long as the speech);
- every job's webhook arrived at least once, signed with the key's secret;
- nothing left behind: no queued or running job, no upload, work folder or partial output;
- RSS of the server process (and with its ffmpeg children), sampled every 0.2 s: peak per run, and the
  peak over the first tenth of the jobs against the peak over the whole run (bounded: no growth per job).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lipsync.server.keys import create_key  # noqa: E402
from lipsync.server.webhooks import SIGNATURE_HEADER, verify_signature  # noqa: E402

SENTENCES = ["Bob made a map.", "Yes, maybe.", "Mom bought a bat.", "Pam came back."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served(SimpleHTTPRequestHandler):
    """GET: the media folder. POST: a webhook, kept as (headers, body)."""

    hooks: queue.Queue = queue.Queue()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.hooks.put((dict(self.headers), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def rss_kb(pid: int) -> tuple[int, int]:
    """(RSS of `pid`, RSS of `pid` plus its children) in kB; 0 if gone."""
    def one(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    own = one(pid)
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # ffmpeg is started from a worker thread
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return own, own + sum(one(c) for c in children)


class Server:
    def __init__(self, home: Path, port: int):
        self.home, self.port, self.proc = home, port, None
        self.peaks: list[list[int]] = []  # per run: [own, with children]
        self.timeline: list[tuple[float, int]] = []  # (jobs finished so far, own RSS)
        self.finished = 0

    def start(self) -> None:
        env = {**os.environ, "LIPSYNC_HOME": str(self.home), "LIPSYNC_ALLOW_PRIVATE_URLS": "1", "LIPSYNC_LOG": "WARNING"}
        with (self.home / "server.log").open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "lipsync.server", "--port", str(self.port)], cwd=REPO,
                                         env=env, stdout=subprocess.DEVNULL, stderr=log)
        self.peaks.append([0, 0])
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/api/v1/jobs/x", timeout=5)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start; see {self.home / 'server.log'}")
                time.sleep(0.1)

    def sample(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            own, total = rss_kb(self.proc.pid)
            peak = self.peaks[-1]
            peak[0], peak[1] = max(peak[0], own), max(peak[1], total)
            self.timeline.append((self.finished, own))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """Retry while the server is down (killed, restarting); give up after two minutes."""
    deadline = time.monotonic() + 120
    while True:
        try:
            response = client.request(method, url, **kwargs)
            if response.status_code < 500:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{method} {url}: no answer for two minutes")
        time.sleep(0.2)


def client_run(n: int, count: int, api: str, key: str, media: str, folder: Path, hook: str, results: list,
               server: Server, lock: threading.Lock) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for i in range(count):
            speech = f"speech{(n + i) % len(SENTENCES)}.wav"
            started = time.monotonic()
            if i % 2:
                with (folder / "portrait.png").open("rb") as image, (folder / speech).open("rb") as audio:
                    # A retried multipart POST must send the files again: read them into memory (small).
                    files = {"image": ("portrait.png", image.read()), "audio": (speech, audio.read())}
                response = request(client, "POST", f"{api}/lipsync-image", files=files,
                                   data={"formState": json.dumps({"seed": i}), "webhook": hook})
            else:
                body = {"webhook": hook, "formState": {"image": f"{media}/portrait.png", "audio": f"{media}/{speech}"}}
                response = request(client, "POST", f"{api}/lipsync-image", json=body)
            if response.status_code != 200:
                raise SystemExit(f"submit: {response.status_code} {response.text}")
            job_id = response.json()["id"]
            while True:
                job = request(client, "GET", f"{api}/jobs/{job_id}").json()
                if job["status"] != "processing":
                    break
                time.sleep(0.3)
            output = None
            if job["status"] == "completed":
                output = folder / "out" / f"{job_id}.mp4"
                output.write_bytes(request(client, "GET", job["output"]).content)
            with lock:
                results.append({"id": job_id, "status": job["status"], "error": job["error"], "speech": speech,
                                "output": output, "seconds": time.monotonic() - started})
                server.finished += 1


def check_mp4(path: Path) -> tuple[bool, float]:
    """(valid, seconds): H.264 + AAC, every frame decodes."""
    try:
        with av.open(str(path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            ok = video.codec_context.name == "h264" and audio.codec_context.name == "aac"
            frames = sum(1 for _ in container.decode(video))
            return ok and frames > 0, frames / float(video.average_rate)
    except (av.error.FFmpegError, IndexError, OSError):
        return False, 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of jobs finished before the kill")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lipsync-soak-") as tmp:
        tmp = Path(tmp)
        home, folder = tmp / "home", tmp / "media"
        (folder / "out").mkdir(parents=True)
        (folder / "portrait.png").write_bytes((REPO / "assets" / "portrait.png").read_bytes())
        durations = {}
        for i, text in enumerate(SENTENCES):
            path = folder / f"speech{i}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
            with av.open(str(path)) as container:
                durations[path.name] = float(container.duration / av.time_base)
        key, info = create_key("soak", home=home)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Served, directory=str(folder)))
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        media = f"http://127.0.0.1:{httpd.server_address[1]}"
        server = Server(home, free_port())
        api = f"http://127.0.0.1:{server.port}/api/v1"
        server.start()

        done = threading.Event()

        def sampler():
            while not done.is_set():
                server.sample()
                time.sleep(0.2)

        threading.Thread(target=sampler, daemon=True).start()
        results: list[dict] = []
        lock = threading.Lock()
        shares = [args.jobs // args.clients + (1 if n < args.jobs % args.clients else 0) for n in range(args.clients)]
        started = time.monotonic()
        clients = [threading.Thread(target=client_run, args=(n, share, api, key, media, folder, f"{media}/hook",
                                                               results, server, lock))
                   for n, share in enumerate(shares)]
        for thread in clients:
            thread.start()
        while server.finished < args.jobs * args.kill_at:
            time.sleep(0.05)
        killed_at = server.finished
        server.kill()
        time.sleep(1.0)
        down_since = time.monotonic()
        server.start()
        restart_s = time.monotonic() - down_since
        for thread in clients:
            thread.join()
        wall = time.monotonic() - started
        time.sleep(2.0)  # late webhooks (the interrupted job's goes out at the restart)
        done.set()

        with sqlite3.connect(home / "server.db") as conn:
            states = dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
            stored = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        server.stop()
        httpd.shutdown()

        hooks: dict[str, int] = {}
        unsigned = 0
        while not Served.hooks.empty():
            headers, body = Served.hooks.get()
            if not verify_signature(info.webhook_secret, body, headers.get(SIGNATURE_HEADER, ""), tolerance=3600):
                unsigned += 1
            job_id = json.loads(body)["id"]
            hooks[job_id] = hooks.get(job_id, 0) + 1

        completed = [r for r in results if r["status"] == "completed"]
        failed = [r for r in results if r["status"] == "failed"]
        valid = []
        for r in completed:
            ok, seconds = check_mp4(r["output"])
            if ok and abs(seconds - durations[r["speech"]]) < 0.2:
                valid.append(r)
        no_reason = [r for r in failed if not r["error"]]
        missing_hooks = [r["id"] for r in results if r["id"] not in hooks]
        leftovers = [str(p.relative_to(home)) for p in (*(home / "server" / "uploads").glob("*"),
                                                        *(home / "server" / "work").glob("*"),
                                                        *(home / "outputs").glob(".*.part.mp4"))]
        first = [rss for finished, rss in server.timeline if finished <= args.jobs // 10]
        peak_first, peak_all = max(first or [0]), max(rss for _, rss in server.timeline)

        print(f"{args.jobs} jobs from {args.clients} clients in {wall:.0f} s; SIGKILL after {killed_at} finished, "
              f"restart answered in {restart_s:.1f} s")
        print(f"- completed {len(completed)}, failed {len(failed)} "
              f"({', '.join(sorted({r['error'] for r in failed})) or '-'}); failed without a reason: {len(no_reason)}")
        print(f"- valid MP4s (H.264 + AAC, decoded, length of the speech): {len(valid)}/{len(completed)}")
        print(f"- webhooks: {sum(hooks.values())} received for {len(hooks)} jobs; jobs without one: "
              f"{len(missing_hooks)}; unsigned or bad signature: {unsigned}")
        print(f"- stored jobs: {stored} ({states}); leftovers: {leftovers or 'none'}")
        runs = ", ".join(f"run {n + 1}: {own / 1024:.0f} MB ({total / 1024:.0f} MB with ffmpeg)"
                         for n, (own, total) in enumerate(server.peaks))
        print(f"- peak RSS of the server: {runs}; first {args.jobs // 10} jobs {peak_first / 1024:.0f} MB, "
              f"whole soak {peak_all / 1024:.0f} MB (x{peak_all / max(peak_first, 1):.2f})")
        print(f"- job time (submit to done, seen by the client): median "
              f"{sorted(r['seconds'] for r in results)[len(results) // 2]:.1f} s")
        ok = (len(results) == args.jobs and not no_reason and len(valid) == len(completed) and not missing_hooks
              and not unsigned and set(states) <= {"done"} and not leftovers)
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
