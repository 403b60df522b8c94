"""Command line: ``voicegate serve | verify A B | enrol ID FILES | identify FILE | analyze FILE
| evaluate ...`` (also ``python -m analytic ...``).

Parsing imports nothing heavy, so ``--help`` answers at once; settings are read and checked
next (one line naming the variable on a bad value, exit 2), then input files, and only then is
the model loaded, once, and handed to the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analytic.cli.analyze import add_analyze_parser

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    from analytic.cli.evaluate import add_evaluate_parser

    parser = argparse.ArgumentParser(prog="voicegate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", metavar="NAME",
                        help="overrides VOICEGATE_ENCODER: campplus (default), ge2e or ecapa")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP (and the bus, when configured)")
    serve.add_argument("--host", help="bind address (VOICEGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (VOICEGATE_PORT, default 7070)")

    verify = commands.add_parser(
        "verify", help="compare two recordings, print JSON; exit 0 same speaker, 1 different, "
        "2 error")
    verify.add_argument("file1", type=Path)
    verify.add_argument("file2", type=Path)
    verify.add_argument("--threshold", type=float)
    verify.add_argument("--pretty", action="store_true", help="a readable table, not JSON")

    add_evaluate_parser(commands)

    enrol = commands.add_parser("enrol", aliases=["enroll"],
                                help="enrol a household member from recordings")
    enrol.add_argument("external_id")
    enrol.add_argument("files", type=Path, nargs="+")
    enrol.add_argument("--replace", action="store_true", help="start over instead of adding")
    enrol.add_argument("--pretty", action="store_true", help="a readable table, not JSON")
    enrol.set_defaults(command="enrol")  # the alias ``enroll`` runs the same command
    identify = commands.add_parser(
        "identify", help="who in the household is speaking, if anyone; exit 0 a member, "
        "1 unknown, 2 error")
    identify.add_argument("file", type=Path)
    identify.add_argument("--threshold", type=float)
    identify.add_argument("--pretty", action="store_true", help="a readable table, not JSON")
    add_analyze_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from analytic.cli.settings import SettingsError, load_settings
    from analytic.logs import configure_logging

    overrides = {k: v for k in ("encoder", "host", "port") if (v := getattr(args, k, None))}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"voicegate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    configure_logging(settings.log_level)
    if args.command == "serve":
        from analytic.cli.serve import serve

        return serve(settings)
    if refusal := _input_refusal(args):
        print(f"voicegate: {refusal}", file=sys.stderr)
        return EXIT_ERROR
    from analytic.cli.build import build_service

    return _command(args)(build_service(settings), args)


def _input_refusal(args: argparse.Namespace) -> str | None:
    """What is wrong with the command's inputs, found before the model loads, so a typo costs
    a line, not seconds of loading and a traceback."""
    if missing := [path for path in _named_files(args) if not path.is_file()]:
        return f"no such file: {', '.join(str(path) for path in missing)}"
    if args.command != "evaluate":
        return None
    if not args.household and (args.trials is None or args.root is None):
        return "evaluate needs --trials and --root, or --household CORPUS"
    if args.conditions:
        from analytic.lab.condition_names import parse_condition

        try:
            for name in args.conditions.split(","):
                parse_condition(name)
        except ValueError as exc:
            return str(exc)
    return None


def _named_files(args: argparse.Namespace) -> list[Path]:
    """The input files a command names (``verify``'s two, ``identify``'s one, ``enrol``'s)."""
    named = [path for name in ("file1", "file2", "file")
             if isinstance(path := getattr(args, name, None), Path)]
    return named + (getattr(args, "files", None) or [])


def _command(args: argparse.Namespace) -> Callable[[Any, argparse.Namespace], int]:
    if args.command == "evaluate":
        from analytic.cli.evaluate import evaluate_command

        return evaluate_command
    if args.command == "analyze":
        from analytic.cli.analyze import analyze_command

        return analyze_command
    from analytic.cli import commands

    return commands.verify if args.command == "verify" else commands.household_command
