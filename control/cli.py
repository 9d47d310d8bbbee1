"""``splitgate weights|rollout|flags|top|request|shadow``: the admin API's command-line tools,
one argparse tree.

Each command's module (``weights_cli``, ``rollout_cli``, ``flags_cli``, ``top``,
``request_cli``, ``shadow_cli``) builds its
branch of the tree and runs on an ``AdminApi``; this module holds what they share.
``--admin-url`` and ``--token`` are declared once, in a parent parser that every command and
subcommand takes: they go before or after a subcommand (the later one wins), and every
``--help`` names ``SPLITGATE_ADMIN_URL`` and ``SPLITGATE_ADMIN_TOKEN``. Their defaults, from
the environment, are the root parser's: in the parents they default to nothing, so a
subcommand never overwrites a value given before it.

Exit status: 0 done, 1 refused by the API (the message names the field and the reason), 2 bad
usage or the API unreachable, 130 interrupted (Ctrl-C), 141 the reader of stdout went away
(``| head``); ``splitgate rollout`` adds its own (1 rolled back or aborted, 3 timed out).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from control import flags_cli, request_cli, rollout_cli, shadow_cli, top, weights_cli
from control.admin_client import AdminApi, AdminClient, ApiError, BadAnswer, Unreachable

DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"
USAGE = 2
INTERRUPTED = 130
PIPE_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away."""

Parents = Sequence[argparse.ArgumentParser]


@dataclass(frozen=True)
class Command:
    """One branch of the tree: its help, how it adds its arguments and subcommands (each
    taking ``parents``), and how it runs."""

    help: str
    description: str
    build: Callable[[argparse.ArgumentParser, Parents, Mapping[str, str]], None]
    run: Callable[[AdminApi, argparse.Namespace], int]
    json: bool


COMMANDS = {
    "weights": Command(
        weights_cli.HELP, weights_cli.DESCRIPTION, weights_cli.build, weights_cli.run, json=True
    ),
    "rollout": Command(
        rollout_cli.HELP, rollout_cli.DESCRIPTION, rollout_cli.build, rollout_cli.run, json=False
    ),
    "flags": Command(
        flags_cli.HELP, flags_cli.DESCRIPTION, flags_cli.build, flags_cli.run, json=True
    ),
    "top": Command(top.HELP, top.DESCRIPTION, top.build, top.run, json=False),
    "request": Command(
        request_cli.HELP, request_cli.DESCRIPTION, request_cli.build, request_cli.run, json=True
    ),
    "shadow": Command(
        shadow_cli.HELP, shadow_cli.DESCRIPTION, shadow_cli.build, shadow_cli.run, json=True
    ),
}


def admin_options() -> argparse.ArgumentParser:
    """``--admin-url`` and ``--token``: the parent parser of every command and subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group("admin API")
    group.add_argument(
        "--admin-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"the control plane's admin API (env SPLITGATE_ADMIN_URL; default {DEFAULT_ADMIN_URL})",
    )
    group.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="the admin token (env SPLITGATE_ADMIN_TOKEN; required)",
    )
    return p


def json_option() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON answer"
    )
    return p


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="splitgate", description="The admin API's commands.")
    root.set_defaults(
        admin_url=env.get("SPLITGATE_ADMIN_URL") or DEFAULT_ADMIN_URL,
        token=env.get("SPLITGATE_ADMIN_TOKEN"),
        json=False,
    )
    sub = root.add_subparsers(dest="tool", required=True, metavar="COMMAND")
    admin, json = admin_options(), json_option()
    for name, command in COMMANDS.items():
        parents = [admin, json] if command.json else [admin]
        branch = sub.add_parser(
            name, parents=parents, help=command.help, description=command.description
        )
        command.build(branch, parents, env)
    return root


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``splitgate COMMAND ...`` for the admin API's commands: ``argv`` starts with COMMAND."""
    args = parser(os.environ if env is None else env).parse_args(argv)
    prog = f"splitgate {args.tool}"
    if no_token(prog, args):
        return USAGE
    command = COMMANDS[args.tool]

    def work() -> int:
        with AdminClient(args.admin_url, args.token) as api:
            return command.run(api, args)

    return guarded(prog, args.admin_url, work)


def no_token(prog: str, args: argparse.Namespace) -> bool:
    if args.token:
        return False
    print(f"{prog}: no token: pass --token or set SPLITGATE_ADMIN_TOKEN", file=sys.stderr)
    return True


def guarded(prog: str, admin_url: str, work: Callable[[], int]) -> int:
    """Run a command; its errors become a message and an exit status, never a traceback."""
    try:
        code = work()
        sys.stdout.flush()  # inside the guard: a closed pipe must surface here, not at exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        return INTERRUPTED
    except ApiError as exc:
        hint = " (check --token or SPLITGATE_ADMIN_TOKEN)" if exc.status == 401 else ""
        print(f"{prog}: {exc}{hint}", file=sys.stderr)
        return 1
    except Unreachable as exc:
        print(f"{prog}: cannot reach the admin API at {admin_url}: {exc}", file=sys.stderr)
        return USAGE
    except (BadAnswer, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE


def _stdout_gone() -> int:
    """Whatever is still buffered goes nowhere, so the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # a stdout without a descriptor (tests) has nothing to flush at exit
    finally:
        os.close(devnull)
    return PIPE_CLOSED
