"""Quality checks measured on output videos."""

from .sync_report import SyncReport, sync_report

__all__ = ["SyncReport", "sync_report"]
