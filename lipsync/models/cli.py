"""`lipsync models list|download|verify|remove`: the weights each engine needs from the Hugging Face Hub."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..errors import EngineError, InputError

EXIT_FAILED = 1


def add_parser(sub) -> None:
    models = sub.add_parser("models", help="download, verify and remove engine weights (Hugging Face Hub)")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="list|download|verify|remove")
    p = models_sub.add_parser("list", help="each engine: ready, needs download (size) or unavailable (why)")
    p.set_defaults(handler=cmd_list)
    p = models_sub.add_parser("download", help="download an engine's weights into the hub cache")
    p.add_argument("engine")
    p.add_argument("--revision", action="append", metavar="[REPO=]REV",
                   help="pin a commit, branch or tag (REPO=REV when the engine has several repos)")
    p.set_defaults(handler=cmd_download)
    p = models_sub.add_parser("verify", help="re-hash the downloaded weights against what the Hub declared")
    p.add_argument("engine", nargs="?", help="one engine (default: every engine with weights)")
    p.set_defaults(handler=cmd_verify)
    p = models_sub.add_parser("remove", help="delete an engine's weights from the hub cache, and their pins")
    p.add_argument("engine")
    p.set_defaults(handler=cmd_remove)


def engine_line(engine) -> list[str]:
    """What `models list` prints for one engine (also what the UI shows): state, then licences."""
    from . import hub, manager

    spec = engine.SPEC
    avail = engine.availability()
    if avail.state == "unavailable":
        state = f"unavailable ({avail.reason})"
    else:
        lacking = manager.missing(spec.weights)
        if lacking:
            size = sum(f.file.size for f in lacking)
            state = f"needs download ({manager.size_text(size)}: `lipsync models download {spec.name}`)"
        else:
            state = "ready"
    lines = [f"{spec.name}: {state}", f"  code licence: {spec.code_licence}"]
    for repo in spec.weights:
        lines.append(f"  weights: {repo.repo_id} ({repo.licence}, {manager.size_text(repo.size)})")
    if not spec.weights:
        lines.append("  weights: none (nothing to download)")
    return lines


def cmd_list(args) -> int:
    from ..engines import list_engines

    for engine in list_engines():
        print("\n".join(engine_line(engine)))
    return 0


def _revisions(engine, values: Optional[list[str]]) -> dict[str, str]:
    repos = [r.repo_id for r in engine.SPEC.weights]
    out = {}
    for value in values or []:
        repo_id, sep, rev = value.rpartition("=")
        if not sep:
            if len(repos) != 1:
                raise InputError("revision", f"{engine.SPEC.name} has {len(repos)} repos ({', '.join(repos)}); "
                                             "use --revision REPO=REV")
            repo_id = repos[0]
        if repo_id not in repos or not rev:
            raise InputError("revision", f"{value!r}: expected REV or REPO=REV with REPO one of {', '.join(repos)}")
        out[repo_id] = rev
    return out


def cmd_download(args) -> int:
    from ..engines import get_engine
    from . import hub, manager

    engine = get_engine(args.engine)
    spec = engine.SPEC
    if not spec.weights:
        print(f"{spec.name}: no weights to download")
        return 0
    revisions = _revisions(engine, args.revision)
    need = sum(f.file.size for f in manager.missing(spec.weights))
    if need and not hub.offline():  # offline, download() says what to run, in one line
        print(f"{spec.name}: downloading {manager.size_text(need)} into {hub.cache_dir()}", file=sys.stderr)
    folders = manager.download(spec.weights, revision=revisions, engine=spec.name)  # huggingface_hub's tqdm bars
    pins = hub.read_pins()
    for repo_id in folders:
        print(f"{repo_id}: ready at commit {pins.get(repo_id, '?')}")
    return 0


def _engines_with_weights(name: Optional[str]):
    from ..engines import get_engine, list_engines

    return [get_engine(name)] if name else [e for e in list_engines() if e.SPEC.weights]


def cmd_verify(args) -> int:
    from . import hub, manager

    failed = 0
    engines = _engines_with_weights(args.engine)
    if args.engine and not engines[0].SPEC.weights:
        print(f"{args.engine}: no weights to verify")
        return 0
    for engine in engines:
        for check in manager.verify(engine.SPEC.weights):
            if check.ok:
                print(f"ok: {check.name}")
            else:
                failed += 1
                print(f"FAILED: {check.name}: {check.problem}", file=sys.stderr)
    if failed:
        raise EngineError(f"{failed} file(s) failed verification; `lipsync models remove` then "
                          "`lipsync models download` the engine")
    return 0


def cmd_remove(args) -> int:
    from ..engines import get_engine
    from . import hub, manager

    spec = get_engine(args.engine).SPEC
    if not spec.weights:
        print(f"{spec.name}: no weights to remove")
        return 0
    freed = manager.remove(spec.weights)
    print(f"{spec.name}: removed {', '.join(r.repo_id for r in spec.weights)} ({manager.size_text(freed)} freed)")
    return 0
