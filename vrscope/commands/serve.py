"""``vrscope serve``: host a collaborative review session on one or more project folders."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._options import nonnegative_float

ORDER = 70

_EPILOG = """\
examples:
  vrscope serve myproject
      one session on loopback; prints an edit URL and a view-only URL
  vrscope serve myproject --host 0.0.0.0 --certfile cert.pem --keyfile key.pem
      reachable from other machines, over TLS (wss://)
  vrscope view --join 'ws://127.0.0.1:8765/myproject?token=...'
  vrscope xr --join 'ws://127.0.0.1:8765/myproject?token=...'

The session journal (PROJECT_DIR/collab-SESSION.sqlite, mode 0600: it holds the
tokens) records every acknowledged edit, and so does the project's own journal
(PROJECT_DIR/journal.jsonl): after the session the project opens with them on the
desktop (vrscope view --project) and in vrscope export, without the server.
Restarting `vrscope serve` on the same folder resumes the session with the same
URLs, and clients reconnect by themselves. Do not edit a served project directly
(join it instead); if it was edited after a session, serve it with --new-session.
The image data is not sent through the session: clients open it by its path or URL.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="host a collaborative review session (websocket server) on project folders",
        description=(
            "Serve one review session per project folder: participants share track and "
            "annotation edits (ordered by the server, journaled before they are "
            "acknowledged), avatars, laser pointers, clipping planes and time. Prints the "
            "join URLs (each carries a secret token)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("projects", nargs="+", metavar="PROJECT_DIR", help="vrscope project folder(s)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)"
    )
    p.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765; 0 = any free)")
    p.add_argument("--certfile", help="TLS certificate (PEM) to serve wss:// (with --keyfile)")
    p.add_argument("--keyfile", help="TLS private key (PEM) for --certfile")
    p.add_argument(
        "--session",
        help="session name in the URL (default: the project folder's name; one project only)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        metavar="N",
        help="snapshot the state every N edits (at most 1000); older edits can no longer be "
        "undone (default: 500)",
    )
    p.add_argument(
        "--new-session",
        action="store_true",
        help="discard the session journal (and its tokens) and start from the project's state",
    )
    p.add_argument(
        "--duration",
        type=nonnegative_float,
        metavar="SECONDS",
        help="stop after this many seconds (scripted demos and tests; default: until Ctrl+C)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import socket
    import ssl
    import sys

    from analysis.errors import ParameterError
    from vrscope.cli import require_extra

    require_extra("websockets", "collab")
    from viewer.collab import CollabServer, Session, is_loopback, session_name

    log = logging.getLogger("vrscope.serve")
    if args.session and len(args.projects) > 1:
        raise ParameterError("--session names one session; give one PROJECT_DIR with it")
    if not 0 <= args.port <= 65535:
        raise ParameterError(f"--port must be 0..65535, got {args.port}")
    if bool(args.certfile) != bool(args.keyfile):
        raise ParameterError("--certfile and --keyfile go together")
    ctx = None
    if args.certfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(args.certfile, args.keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise ParameterError(f"cannot load --certfile/--keyfile: {exc}") from exc

    server = CollabServer(args.host, args.port, ssl_context=ctx)
    names: set[str] = set()
    for folder in args.projects:
        name = args.session or session_name(folder)
        if name in names:
            raise ParameterError(f"two projects would share the session name {name!r}")
        names.add(name)
        # Accepted ops go to the session journal (order, op ids, per-author undo) AND,
        # in server order, to the project's journal.jsonl, both before the ack: the
        # project reopens with every acknowledged edit without the server.
        server.add_session(
            Session.for_project(
                folder,
                name,
                checkpoint_every=args.checkpoint_every,
                new_session=args.new_session,
            )
        )

    async def main() -> None:
        await server.start()
        try:
            shown = args.host
            if args.host in ("0.0.0.0", "::", ""):
                shown = socket.gethostname()
            for name in server.sessions:
                print(f"session {name}:")
                print(f"  join (edit):      {server.join_url(name, 'edit', host=shown)}")
                print(f"  join (view only): {server.join_url(name, 'view', host=shown)}")
            if not is_loopback(args.host):
                print(
                    f"warning: bound to {args.host}, reachable from other machines"
                    + ("" if ctx else "; traffic is not encrypted (use --certfile/--keyfile)"),
                    file=sys.stderr,
                )
            sys.stdout.flush()
            if args.duration is not None:
                await asyncio.sleep(args.duration)
            else:
                await server.serve_forever()
        finally:
            await server.stop()

    log.info("serving %d session(s) on %s:%d", len(server.sessions), args.host, args.port)
    try:
        asyncio.run(main())
    except OSError as exc:
        # Port in use or address not available: a user error, not a bug.
        raise ParameterError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    return 0
