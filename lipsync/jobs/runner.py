"""Run a request as a job: a record shaped like the hosted API's, saved before and after the work."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from .. import config, pricing
from ..engines.base import Progress
from ..errors import LipsyncError
from ..pipeline import CancelCheck, render
from ..requests import MultiRequest, Request, VideoRequest
from . import records
from .records import JobRecord

log = logging.getLogger(__name__)


def run_job(request: Request, *, out_path: Optional[Path] = None, progress: Optional[Progress] = None,
            cancel: Optional[CancelCheck] = None, record: Optional[JobRecord] = None,
            allow_download: bool = False, records_dir: Optional[Path] = None) -> JobRecord:
    """Render `request`; always returns the finished record (status completed or failed), never raises
    for bad input. The output lands at `out_path` (default: LIPSYNC_HOME/outputs/<id>.mp4), the record
    in `records_dir` (default: LIPSYNC_HOME/jobs; a Celery worker keeps it in the job's scratch folder).
    With `allow_download`, an engine whose weights are missing downloads them first."""
    record = record or JobRecord(model=request.model, request=request.model_dump(exclude_none=True))
    out_path = Path(out_path) if out_path else config.outputs_dir() / f"{record.id}.mp4"
    records.save(record, records_dir)
    started = time.perf_counter()
    try:
        result = render(request, out_path, progress=progress, cancel=cancel, allow_download=allow_download)
        # The hosted API bills the speech's length, even where a local length mode (cut_audio) cut it.
        record.credits = estimate_for(request, result.audio_seconds or result.duration).credits
    except LipsyncError as exc:
        record.status, record.error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must still end as a failed record, not a hung job
        log.exception("job %s crashed", record.id)
        record.status, record.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    else:
        record.status, record.output = "completed", str(out_path)
        record.timings = {stage: round(seconds * 1000) for stage, seconds in result.timings.items()}
        record.duration = round(result.duration, 3)
        record.engine = result.engine
        record.warnings = result.warnings
        record.ignoredPromptWords = result.ignored_prompt_words
        record.compare = str(result.compare) if result.compare else None
        record.request["seed"] = result.seed  # so the user can reproduce a job that had no seed
    record.executionTime = round((time.perf_counter() - started) * 1000)
    records.save(record, records_dir)
    return record


def estimate_for(request: Request, duration: float) -> pricing.Estimate:
    """What the hosted API would charge for this job, given the output duration."""
    if isinstance(request, VideoRequest):
        return pricing.estimate_video(duration, resolution=request.resolution)
    if isinstance(request, MultiRequest):
        # The output timeline already encodes the order rule (longer track, or left + right).
        return pricing.estimate_multi(duration, 0.0 if request.order != "meanwhile" else duration,
                                      order=request.order, resolution=request.resolution)
    return pricing.estimate_image(duration, resolution=request.resolution)
