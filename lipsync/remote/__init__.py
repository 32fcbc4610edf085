"""Client for the hosted Lipsync API (`HostedClient`) and helpers to mirror local jobs there."""

from .client import DEFAULT_API_URL, HostedClient, RemoteError, api_base
from .mirror import hosted_form_state, mirror_available, public_base_url, public_media_url

__all__ = ["DEFAULT_API_URL", "HostedClient", "RemoteError", "api_base", "hosted_form_state", "mirror_available",
           "public_base_url", "public_media_url"]
