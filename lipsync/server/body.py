"""Reading a job submission's body under limits: JSON, urlencoded or multipart, streamed.

Nothing is read past a limit: a JSON body stops at `MAX_JSON_BYTES` (chunked or not), and a multipart
body is parsed as it arrives (python-multipart's streaming parser), each upload written straight to the
job's folder and refused once it passes the media limit. Memory stays bounded by one chunk plus the
small text fields.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qsl

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from .. import config
from ..requests import FLOAT_FIELDS, INT_FIELDS
from .errors import ApiError

MAX_JSON_BYTES = 1 << 20  # a JSON or urlencoded body; each text part of a multipart body
MAX_DEPTH = 32  # nesting of JSON values: formState is flat, a face box is a list
MAX_PARTS = 50
# After a 413, this much more of the body is read and thrown away, so that a client that overshot a
# little gets the answer on a clean connection; a longer body gets the answer and a closed connection.
DISCARD_BYTES = 8 << 20
_HELP = '{"webhook"?: url, "formState": {...}}'

Submission = tuple[dict, Optional[str], dict[str, str]]  # formState, webhook, {field: uploaded file}


def _mb(n: int) -> str:
    return f"{n / (1 << 20):g}"


async def read_submission(request: Request, folder: Path, media_fields: tuple[str, ...], max_media_bytes: int) -> Submission:
    """formState, webhook and uploaded files (saved under `folder`); errors name the field."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, folder, media_fields, max_media_bytes)
    raw = await _read_capped(request)
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            fields = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_PARTS)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "body: is not a valid form body", "body") from None
        return _from_fields(fields, {}, media_fields)
    body = parse_json(raw, "body")
    if not isinstance(body, dict):
        raise ApiError(400, f"body: expected a JSON object {_HELP}", "body")
    form_state = body.get("formState")
    if form_state is None:
        raise ApiError(400, "formState: is required", "formState")
    if not isinstance(form_state, dict):
        raise ApiError(400, "formState: must be a JSON object", "formState")
    webhook = body.get("webhook")
    if webhook is not None and not isinstance(webhook, str):
        raise ApiError(400, "webhook: must be a URL string", "webhook")
    return form_state, webhook, {}


async def _read_capped(request: Request) -> bytes:
    too_large = ApiError(413, f"body: JSON body is larger than {_mb(MAX_JSON_BYTES)} MB; send media as URLs or "
                         "multipart uploads", "body")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def discard_rest(request: Request) -> bool:
    """Read and drop what is left of the body, up to DISCARD_BYTES; True if it ended within that."""
    size = 0
    while size <= DISCARD_BYTES:
        message = await request.receive()
        if message["type"] != "http.request":
            return False  # the client went away
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def parse_json(raw: bytes | str, field: str) -> Any:
    """JSON text → value; too deep or invalid is a 400 naming `field`."""
    try:
        value = json.loads(raw or b"null")
    except RecursionError:
        value = _TOO_DEEP
    except ValueError:
        raise ApiError(400, f"{field}: is not valid JSON", field) from None
    if value is _TOO_DEEP or _depth(value) > MAX_DEPTH:
        raise ApiError(400, f"{field}: JSON is nested more than {MAX_DEPTH} levels deep", field)
    return value


_TOO_DEEP = object()


def _depth(value: Any) -> int:
    """Nesting depth, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _from_fields(fields: list[tuple[str, str]], uploads: dict[str, str], media_fields: tuple[str, ...]) -> Submission:
    """formState from form fields: a `formState` JSON part plus plain fields (resolution=720p, seed=7)."""
    form_state: dict[str, Any] = {}
    webhook = None
    for name, value in fields:
        if name == "formState":
            parsed = parse_json(value, "formState")
            if not isinstance(parsed, dict):
                raise ApiError(400, "formState: must be a JSON object", "formState")
            form_state.update(parsed)
        elif name == "webhook":
            webhook = value or None
        elif name in media_fields and name in uploads:
            raise ApiError(400, f"{name}: sent both as a file and as a field", name)
        else:
            # Form fields are text: whole numbers for the integer options, as a JSON body would send them.
            stripped = value.strip()
            is_int = name in INT_FIELDS and stripped.lstrip("-").isascii() and stripped.lstrip("-").isdigit()
            form_state[name] = int(stripped) if is_int else _number(stripped) if name in FLOAT_FIELDS else value
    form_state.update(uploads)
    return form_state, webhook, uploads


def _number(text: str):
    """A form field's decimal number (-18, -7.5), or the text itself for the request to refuse by name."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value == value and abs(value) != float("inf") else text


class _Multipart:
    """python-multipart callbacks: text parts kept (bounded), file parts written as they arrive."""

    def __init__(self, folder: Path, media_fields: tuple[str, ...], max_media_bytes: int):
        self.folder, self.media_fields, self.max_media_bytes = folder, media_fields, max_media_bytes
        self.fields: list[tuple[str, str]] = []
        self.uploads: dict[str, str] = {}
        self.parts = 0
        self._header_name, self._header_value = b"", b""
        self._disposition = b""
        self._name = ""
        self._text: Optional[bytearray] = None
        self._file: Optional[int] = None  # an OS file descriptor
        self._size = 0
        self.complete = False

    def on_end(self) -> None:
        self.complete = True

    def callbacks(self) -> dict:
        return {name: getattr(self, name) for name in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
            "on_part_data", "on_part_end", "on_end")}

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(413, f"body: more than {MAX_PARTS} parts", "body")
        self._disposition, self._text, self._size = b"", None, 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise ApiError(400, 'body: a multipart part has no Content-Disposition name', "body")
        name = self._name = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            self._text = bytearray()
            return
        if name not in self.media_fields:
            raise ApiError(400, f"{name}: is not a media field ({', '.join(self.media_fields)})", name)
        if name in self.uploads:
            raise ApiError(400, f"{name}: uploaded twice", name)
        filename = options[b"filename"].decode("utf-8", "replace")
        suffix = "".join(c for c in Path(filename).suffix[:10] if c.isalnum() or c == ".")
        path = config.private_dir(self.folder) / f"{name}{suffix}"
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, config.PRIVATE_FILE)
        self.uploads[name] = str(path)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._text is not None:
            if self._size > MAX_JSON_BYTES:
                raise ApiError(413, f"{self._name}: field is larger than {_mb(MAX_JSON_BYTES)} MB", self._name)
            self._text += data[start:end]
            return
        if self._size > self.max_media_bytes:
            raise ApiError(413, f"{self._name}: upload is larger than {_mb(self.max_media_bytes)} MB", self._name)
        view = memoryview(data)[start:end]
        while view:
            view = view[os.write(self._file, view):]

    def on_part_end(self) -> None:
        if self._text is not None:
            try:
                self.fields.append((self._name, self._text.decode("utf-8")))
            except UnicodeDecodeError:
                raise ApiError(400, f"{self._name}: is not UTF-8 text", self._name) from None
            self._text = None
            return
        self.close_file()
        if self._size == 0:
            raise ApiError(400, f"{self._name}: uploaded file is empty", self._name)

    def close_file(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None


async def _read_multipart(request: Request, folder: Path, media_fields: tuple[str, ...], max_media_bytes: int) -> Submission:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "body: multipart body without a boundary", "body")
    sink = _Multipart(folder, media_fields, max_media_bytes)
    try:
        parser = MultipartParser(boundary, sink.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if not sink.complete:
            raise ApiError(400, "body: multipart body ends before its closing boundary", "body")
    except FormParserError:
        raise ApiError(400, "body: is not a valid multipart body", "body") from None
    finally:
        sink.close_file()
    return _from_fields(sink.fields, sink.uploads, media_fields)
