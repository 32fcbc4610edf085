"""`lipsync keys create|list|revoke`: API keys of the local REST API."""

from __future__ import annotations

import argparse
import json

from ..errors import InputError


def add_parser(sub) -> None:
    keys = sub.add_parser("keys", help="API keys for the local REST API")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; it is printed once, alone on the last line")
    create.add_argument("--name", help="a label to recognise (and revoke) the key by")
    create.set_defaults(handler=cmd_create)
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--show-secrets", action="store_true", help="also print each key's webhook signing secret")
    listing.set_defaults(handler=cmd_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by the key, its prefix sk_XXXX, or its name")
    revoke.add_argument("key", metavar="KEY_OR_NAME")
    revoke.set_defaults(handler=cmd_revoke)


def cmd_create(args: argparse.Namespace) -> int:
    from .keys import create_key

    key, info = create_key(args.name)
    label = f" ({info.name})" if info.name else ""
    print(f"Created API key {info.prefix}{label}. It is shown once: store it now.")
    print(f"Webhook signing secret: {info.webhook_secret}")
    print(key)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .keys import list_keys

    infos = list_keys()
    if args.json:
        print(json.dumps([info.public() | ({"webhook_secret": info.webhook_secret} if args.show_secrets else {})
                          for info in infos], indent=2))
        return 0
    if not infos:
        print("No API keys. Create one with: lipsync keys create --name NAME")
    for info in infos:
        line = f"{info.prefix}  {info.created}  {info.name or '-'}"
        print(f"{line}  {info.webhook_secret}" if args.show_secrets else line)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from .keys import revoke_key

    if not revoke_key(args.key):
        raise InputError("key", "no key matches (give the key, its prefix sk_XXXX, or its name)")
    print("Revoked.")
    return 0
