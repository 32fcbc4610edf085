"""Batch jobs: rows of a CSV or JSONL file (or pairs of uploaded files), one job record per row.

1. `read_rows`: the file's rows as dicts (column names are the request fields).
2. `plan`: each row becomes a request and an output path, or the reason it cannot (`RowError`, naming
   the row and the field). A row whose output already exists is done: outputs appear only once
   complete (temp file + rename), so existence means complete.
3. `run_batch`: renders the runnable rows (N at once in threads; one process, so start-up is paid
   once); a failed row never stops the others.
4. `BatchSummary`: done / failed with reason / skipped, and the hosted credits estimate.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Optional

from ..errors import InputError, LipsyncError
from ..requests import FLOAT_FIELDS, INT_FIELDS, Request, parse_request
from . import records
from .records import JobRecord

MODELS = ("lipsync-video", "lipsync-image", "lipsync-image-multi")
# A `kind` (or `model`) cell may also use the CLI's words.
KIND_ALIASES = {"video": "lipsync-video", "image": "lipsync-image", "dialogue": "lipsync-image-multi",
                "multi": "lipsync-image-multi", **{m: m for m in MODELS}}
MEDIA_FIELDS = ("video", "image", "audio", "left_audio", "right_audio", "mask_image")
MAIN_INPUT = {"lipsync-video": "video", "lipsync-image": "image", "lipsync-image-multi": "image"}
# Columns that are about the row, not the request.
ROW_COLUMNS = ("kind", "model", "output")
# Marks a row read from text (CSV): whole numbers are read from its cells. JSON keeps its types.
TEXT_ROW = "__text__"

RowStatus = Literal["done", "failed", "skipped", "pending"]
# Maps a media cell (after the base folder is applied) to the file to use; raises InputError to refuse it.
Resolver = Callable[[str, str], str]
# Extra checks on a planned request (limits, engine support); raises InputError.
Check = Callable[[Request], None]


class RowError(InputError):
    """An InputError in one row of a batch: "row 3: audio: file not found: …"."""

    def __init__(self, row: int, field: str, problem: str):
        super().__init__(field, problem)
        self.row = row
        self.args = (f"row {row}: {field}: {problem}",)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return (RowError, (self.row, self.field, self.problem))


@dataclass
class Row:
    """One row of a batch, planned and then run."""

    number: int  # counted from 1, the header not counted
    data: dict
    request: Optional[Request] = None
    output: Optional[Path] = None
    status: RowStatus = "pending"
    error: Optional[str] = None
    credits: Optional[int] = None
    job_id: Optional[str] = None
    seconds: Optional[float] = None  # run time

    @property
    def model(self) -> str:
        if self.request is not None:
            return self.request.model
        try:
            return infer_model(self.data)
        except InputError:
            return ""


SUMMARY_HEADERS = ["Row", "Status", "Output", "Credits (est.)", "Reason"]


@dataclass
class BatchSummary:
    rows: list[Row] = field(default_factory=list)

    def count(self, status: RowStatus) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def credits(self) -> int:
        """What the hosted API would charge for the rows that have an output (done and skipped)."""
        return sum(r.credits or 0 for r in self.rows if r.status in ("done", "skipped"))

    @property
    def failed(self) -> bool:
        return self.count("failed") > 0

    def table(self) -> list[list[str]]:
        return [[str(r.number), r.status, r.output.name if r.output and r.status != "failed" else "",
                 "" if r.credits is None else str(r.credits), (r.error or "").removeprefix(f"row {r.number}: ")]
                for r in self.rows]

    def totals(self) -> str:
        return (f"{len(self.rows)} rows: {self.count('done')} done, {self.count('failed')} failed, "
                f"{self.count('skipped')} skipped (already done); hosted API estimate {self.credits} credits")

    def text(self) -> str:
        """A plain-text table for a terminal."""
        body = self.table()
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h)
                  for i, h in enumerate(SUMMARY_HEADERS)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        return "\n".join([line(SUMMARY_HEADERS), line(["-" * w for w in widths]), *map(line, body), self.totals()])

    def to_dict(self) -> dict:
        return {"done": self.count("done"), "failed": self.count("failed"), "skipped": self.count("skipped"),
                "credits": self.credits,
                "rows": [{"row": r.number, "status": r.status, "output": str(r.output) if r.output else None,
                          "credits": r.credits, "error": r.error, "job": r.job_id} for r in self.rows]}


# -- 1. reading ------------------------------------------------------------------------------------


def _column(name: str) -> str:
    """Header cells as the CLI spells options are accepted too: " Left-Audio " → "left_audio"."""
    return name.strip().lower().replace("-", "_")


def read_rows(path: Path) -> list[dict]:
    """The rows of a .csv (header = field names) or .jsonl (one JSON object a line) file. Blank cells
    and blank lines are dropped; lines starting with # are comments."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("jobs", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("jobs", f"cannot read {path.name}: {exc}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson") or text.lstrip().startswith("{"):
        rows = []
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                row = {"__error__": f"not valid JSON: {exc.msg} (column {exc.colno})"}
            if not isinstance(row, dict):
                row = {"__error__": "must be a JSON object of request fields"}
            rows.append({_column(str(k)): v for k, v in row.items() if v is not None and v != ""})
        return rows
    # Parsed as a whole, not line by line: a quoted cell (a transcript) may hold line breaks.
    try:
        records = [r for r in csv.reader(io.StringIO(text))
                   if any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    except csv.Error as exc:
        raise InputError("jobs", f"{path.name} is not a CSV file: {exc}") from None
    if not records:
        raise InputError("jobs", f"{path.name} has no header row naming the request fields")
    header = [_column(c) for c in records[0]]
    rows = []
    for cells in records[1:]:
        row = {name: value.strip() for name, value in zip(header, cells) if name and value.strip()}
        if any(c.strip() for c in cells[len(header):]):
            row["__error__"] = "has more cells than the header has columns"
        rows.append({**row, TEXT_ROW: True})
    return rows


# -- 2. planning -----------------------------------------------------------------------------------


def infer_model(row: dict) -> str:
    """`kind`/`model` when given; otherwise from the media columns present."""
    kind = row.get("kind") or row.get("model")
    if kind:
        model = KIND_ALIASES.get(str(kind).strip().lower())
        if model is None:
            raise InputError("kind", f"{kind!r} is not a job kind; expected one of {', '.join(KIND_ALIASES)}")
        return model
    if row.get("video"):
        return "lipsync-video"
    if row.get("image") and (row.get("left_audio") or row.get("right_audio")):
        return "lipsync-image-multi"
    if row.get("image"):
        return "lipsync-image"
    raise InputError("kind", "cannot tell the job kind: give a video or an image column (or a kind column)")


def _number(name: str, value: str):
    """CSV cells are text: whole numbers (and face boxes "x0,y0,x1,y1") are read from them. JSON values
    keep their types, so the request's strict checks apply to them."""
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if name in ("left_face", "right_face") and text.count(",") == 3:
        try:
            return tuple(float(p) for p in text.split(","))
        except ValueError:
            pass
    raise InputError(name, f"{value!r} is not allowed; expected a whole number"
                     + (" or a box x0,y0,x1,y1" if name in ("left_face", "right_face") else ""))


def _decimal(name: str, value: str) -> float:
    """A CSV cell's number of dB (keep_background: -18, -7.5)."""
    try:
        number = float(value.strip())
    except ValueError:
        number = float("nan")
    if number != number or abs(number) == float("inf"):
        raise InputError(name, f"{value!r} is not allowed; expected a number")
    return number


def local_files(base: Path) -> Resolver:
    """The CLI's resolver: URLs as they are, paths relative to `base` (the jobs file's folder); a missing
    file is an error of its row, before anything runs."""

    def resolve(name: str, value: str) -> str:
        if "://" in value:
            return value
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise InputError(name, f"file not found: {path}")
        return str(path)

    return resolve


def _output_name(row: Row, model: str, request_media: str) -> str:
    given = row.data.get("output")
    if given:
        name = str(given).strip()
        # A name, not a path: outputs stay inside the batch's folder.
        if not re.fullmatch(r"[\w][\w .()+-]{0,120}", name):
            raise InputError("output", f"{name!r} must be a plain file name (letters, digits, . _ - and spaces)")
        return name if name.lower().endswith(".mp4") else f"{name}.mp4"
    stem = Path(request_media.split("?")[0].rstrip("/")).stem or MAIN_INPUT[model]
    stem = re.sub(r"[^\w.-]+", "_", stem)[:80]
    return f"{row.number}-{stem}.mp4"


def plan_row(row: Row, out_dir: Path, resolve: Resolver, check: Optional[Check] = None) -> Row:
    """Turn a row into its request and output path; on a problem the row is failed with a RowError."""
    data = row.data
    try:
        if "__error__" in data:
            raise InputError("row", data["__error__"])
        model = infer_model(data)
        state = {}
        for name, value in data.items():
            if name in ROW_COLUMNS or name.startswith("__"):
                continue
            if name in MEDIA_FIELDS and isinstance(value, str):
                value = resolve(name, value.strip())
            elif name in INT_FIELDS and data.get(TEXT_ROW):
                value = _number(name, value)
            elif name in FLOAT_FIELDS and data.get(TEXT_ROW):
                value = _decimal(name, value)
            state[name] = value
        request = parse_request(model, state)
        if check is not None:
            check(request)
        row.request = request
        row.output = out_dir / _output_name(row, model, getattr(request, MAIN_INPUT[model]))
    except InputError as exc:
        row.status, row.error = "failed", str(RowError(row.number, exc.field, exc.problem))
    return row


def plan(data: Iterable[dict], out_dir: Path, resolve: Resolver, check: Optional[Check] = None) -> list[Row]:
    """Plan every row. Rows whose output already exists are `skipped`; two rows may not share an output."""
    rows = [plan_row(Row(n, dict(d)), Path(out_dir), resolve, check) for n, d in enumerate(data, 1)]
    seen: dict[Path, int] = {}
    for row in rows:
        if row.output is None:
            continue
        if row.output in seen:
            row.status = "failed"
            row.error = str(RowError(row.number, "output", f"{row.output.name} is already row {seen[row.output]}'s"))
            continue
        seen[row.output] = row.number
        if row.output.is_file():
            row.status = "skipped"
    return rows


def pair_by_stem(visuals: Iterable[str], audios: Iterable[str]) -> tuple[list[dict], list[str]]:
    """Folder mode: rows pairing each video or image with the audio of the same file stem (case-insensitive).
    Returns (rows, problems): files left without a partner, and stems used twice."""
    def by_stem(paths):
        found: dict[str, list[str]] = {}
        for p in paths:
            found.setdefault(Path(p).stem.lower(), []).append(p)
        return found

    pictures, sounds = by_stem(visuals), by_stem(audios)
    rows, problems = [], []
    for stem in sorted(pictures):
        if len(pictures[stem]) > 1 or len(sounds.get(stem, [])) > 1:
            names = [Path(p).name for p in pictures[stem] + sounds.get(stem, [])]
            problems.append(f"{stem}: more than one file has this name ({', '.join(names)})")
            continue
        visual = pictures[stem][0]
        if stem not in sounds:
            problems.append(f"{Path(visual).name}: no audio named {stem}.*")
            continue
        kind = "video" if _is_video(visual) else "image"
        rows.append({kind: visual, "audio": sounds[stem][0]})
    for stem in sorted(set(sounds) - set(pictures)):
        problems.append(f"{Path(sounds[stem][0]).name}: no video or image named {stem}.*")
    return rows, problems


VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi")


def _is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# -- 3. running ------------------------------------------------------------------------------------

# (overall fraction, a label, the row that just finished or None)
BatchProgress = Callable[[float, str, Optional[Row]], None]


def run_batch(rows: list[Row], *, jobs: int = 1, progress: Optional[BatchProgress] = None,
              cancel: Optional[Callable[[], bool]] = None, session: Optional[str] = None) -> BatchSummary:
    """Render the pending rows, `jobs` at once; a failed row is recorded and the rest go on. Every row
    that was tried or refused gets a job record (the refused ones: a failed record with the reason)."""
    from .runner import estimate_for, run_job

    report = progress or (lambda fraction, label, row: None)
    stopped = cancel or (lambda: False)
    todo = [r for r in rows if r.status == "pending"]
    fractions = {r.number: 0.0 for r in todo}
    lock = threading.Lock()
    total = max(1, len(todo))

    def overall() -> float:
        return sum(fractions.values()) / total

    for row in rows:
        if row.status == "failed":
            record = JobRecord(model=row.model or "unknown", status="failed", error=row.error,
                               request=_plain(row.data), session=session)
            records.save(record)
            row.job_id = record.id
        elif row.status == "skipped":
            row.credits = _credits_of_existing(row, estimate_for)

    def one(row: Row) -> None:
        if stopped():
            row.status, row.error = "failed", f"row {row.number}: cancelled before it started"
            return

        def step(fraction: float, stage: str) -> None:
            with lock:
                fractions[row.number] = fraction
                value = overall()
            report(value, f"row {row.number}: {stage}", None)

        record = JobRecord(model=row.request.model, request=row.request.model_dump(exclude_none=True), session=session)
        record = run_job(row.request, out_path=row.output, progress=step, cancel=stopped, record=record)
        row.job_id, row.seconds = record.id, (record.executionTime or 0) / 1000
        if record.status == "completed":
            row.status, row.credits = "done", record.credits
        else:
            row.status, row.error = "failed", f"row {row.number}: {record.error}"
        with lock:
            fractions[row.number] = 1.0
            value = overall()
        report(value, f"row {row.number}: {row.status}", row)

    if jobs <= 1:
        for row in todo:  # in the caller's thread: its progress callback may be thread-bound (Gradio)
            one(row)
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lipsync-batch") as pool:
            list(pool.map(one, todo))
    return BatchSummary(rows)


def _plain(data: dict) -> dict:
    return {k: v if isinstance(v, (str, int, float, bool, list)) or v is None else str(v)
            for k, v in data.items() if not k.startswith("__")}


def _credits_of_existing(row: Row, estimate_for) -> Optional[int]:
    """A skipped row's estimate, from its output's length (the billed length: the output follows the audio)."""
    from ..media.probe import probe

    try:
        info = probe(row.output, "output")
        return estimate_for(row.request, info.duration).credits if info.duration else None
    except (LipsyncError, ValueError):
        return None
