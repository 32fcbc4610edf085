"""Errors a user can act on. Their text names the input and the problem, never a traceback."""

from __future__ import annotations


class LipsyncError(Exception):
    """Base for every error the CLI, UI and server show to a user as one line."""


class InputError(LipsyncError):
    """Something wrong with one named input ("left_audio: no speech found")."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")

    def __reduce__(self):  # survives pickling (errors raised in worker processes)
        return (InputError, (self.field, self.problem))


class EngineError(LipsyncError):
    """An engine cannot run (missing weights, unsupported option, ...)."""


class NotAllowed(LipsyncError):
    """This user may not do that (a studio visitor managing keys, another session's job)."""


class Cancelled(LipsyncError):
    """The user cancelled the job."""

    def __init__(self, message: str = "cancelled by the user"):
        super().__init__(message)

    def __reduce__(self):
        return (Cancelled, self.args)
