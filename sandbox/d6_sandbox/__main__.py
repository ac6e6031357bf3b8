"""``d6-sandbox``: run the d6 sandbox in the foreground.

Prints exactly one line, ``d6 sandbox listening on http://HOST:PORT/api`` (https with ``--tls``,
followed by a second line with the CA certificate's path), then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
from collections.abc import Sequence

from d6_sandbox.app import PROFILES, TYPE8_LABELS, Sandbox, start_server
from d6_sandbox.faults import KINDS

PASSWORD_ENV = "D6_SANDBOX_PASSWORD"
DEFAULT_USERNAME = "sandbox-user"
DEFAULT_PASSWORD = "sandbox-pass"


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="d6-sandbox",
        description="A local emulator of the d6+ Integrate API.",
        epilog=(
            "Call it as d6 is called: every request carries the headers HTTP-X-USERNAME and "
            "HTTP-X-PASSWORD with the values above (and HTTP-X-SCHOOLID on Finance+ calls), e.g. "
            "curl -H 'HTTP-X-USERNAME: sandbox-user' -H 'HTTP-X-PASSWORD: sandbox-pass' "
            "http://127.0.0.1:8600/api/v2/settings/clientintegrations"
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (loopback unless --allow-non-loopback)"
    )
    parser.add_argument("--port", type=int, default=8600, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--username", default=DEFAULT_USERNAME, help="integrator username to accept"
    )
    parser.add_argument(
        "--password",
        # SUPPRESS keeps a password taken from the environment out of --help's defaults.
        default=argparse.SUPPRESS,
        help=f"integrator password to accept (default: ${PASSWORD_ENV} if set, else "
        f"{DEFAULT_PASSWORD}; prefer the variable: other local users can read a command line)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated district")
    parser.add_argument("--schools", type=int, default=25, help="number of schools (ids from 1000)")
    parser.add_argument(
        "--learners-per-school", type=int, default=400, help="learners generated per school"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=20.0,
        help="requests per second per credential (0 turns limiting off)",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added to every d6 response"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of d6 requests given a fault"
    )
    parser.add_argument(
        "--fault-kinds",
        default="500,502,503,429",
        help=f"comma-separated kinds for --fault-rate: {','.join(KINDS)}",
    )
    parser.add_argument(
        "--max-allowed-limit", type=int, default=50, help="largest page size accepted"
    )
    parser.add_argument(
        "--default-limit", type=int, default=10, help="page size when none is asked for"
    )
    parser.add_argument(
        "--activation-delay-s",
        type=float,
        default=0.0,
        help="seconds after activation before Finance+ answers for a school (live: 60-120)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="live",
        help="live: the v2 activation route (PATCH /v2/settings/clientintegrations) answers "
        "route_not_found as integrators report of the live service, so clients must use "
        "PATCH /v1/settings/clients/{school_id}; docs: every route as d6 documents it",
    )
    parser.add_argument(
        "--type8-label",
        choices=sorted(TYPE8_LABELS),
        default="docs",
        help="name of API type 8 in Get Client Integrations: docs 'Admin+ API', "
        "live 'd6 Integrate API' (as seen on live accounts)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve https with a generated self-signed CA"
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="permit --host to be an address other machines can reach",
    )
    return parser


def is_loopback(host: str) -> bool:
    """Say whether *host* is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(args: argparse.Namespace, sandbox: Sandbox) -> None:
    ssl_context, ca_path = None, None
    if args.tls:
        from d6_sandbox.tls import make_tls_context

        ssl_context, ca_path = make_tls_context(args.host)
    runner, port = await start_server(sandbox, args.host, args.port, ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    scheme = "https" if args.tls else "http"
    lines = f"d6 sandbox listening on {scheme}://{shown_host}:{port}/api\n"
    if ca_path:
        lines += f"{ca_path}\n"
    sys.stdout.write(lines)
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until SIGINT or SIGTERM.

    :param argv: arguments (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "password"):
        args.password = os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD)
    if not is_loopback(args.host) and not args.allow_non_loopback:
        parser.error(
            f"refusing to bind {args.host}: the sandbox accepts any caller with its well-known "
            "credentials; pass --allow-non-loopback to bind a non-loopback address"
        )
    kinds = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
    try:
        sandbox = Sandbox(
            username=args.username,
            password=args.password,
            seed=args.seed,
            schools=args.schools,
            learners_per_school=args.learners_per_school,
            rate_limit=args.rate_limit,
            latency_ms=args.latency_ms,
            fault_rate=args.fault_rate,
            fault_kinds=kinds,
            max_allowed_limit=args.max_allowed_limit,
            default_limit=args.default_limit,
            activation_delay_s=args.activation_delay_s,
            profile=args.profile,
            type8_label=args.type8_label,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(args, sandbox))
    except OSError as exc:
        print(
            f"d6-sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
