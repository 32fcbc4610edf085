"""The API's HTTP errors: a status and the JSON body {"error": message, "field"?: name}."""

from __future__ import annotations

from typing import Optional


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def error_body(message: str, field: Optional[str] = None) -> dict:
    return {"error": message, **({"field": field} if field else {})}
