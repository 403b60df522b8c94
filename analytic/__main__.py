"""Command line: ``python -m analytic serve | verify A B | evaluate --trials CSV --root DIR``.

Everything is built once here (settings, logging, encoder, service, app) and handed down.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from analytic.encoders import ENCODER_NAMES, load_encoder
from analytic.errors import AnalyticError
from analytic.logs import configure_logging
from analytic.schemas import VerificationOptions
from analytic.service import VerificationService
from analytic.settings import Settings

log = logging.getLogger("analytic")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analytic", description=__doc__)
    parser.add_argument("--encoder", choices=ENCODER_NAMES, help="overrides VOICEGATE_ENCODER")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP (and the bus, when configured)")
    serve.add_argument("--host", help="bind address (VOICEGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (VOICEGATE_PORT, default 7070)")

    verify = commands.add_parser("verify", help="compare two recordings, print JSON")
    verify.add_argument("file1", type=Path)
    verify.add_argument("file2", type=Path)
    verify.add_argument("--threshold", type=float)

    evaluate = commands.add_parser("evaluate", help="EER, error rates and minDCF of a trial list")
    evaluate.add_argument("--trials", type=Path, required=True, help="CSV: enroll,test,target")
    evaluate.add_argument("--root", type=Path, required=True, help="folder the paths start in")
    evaluate.add_argument("--threshold", type=float, help="report error rates at this threshold")
    evaluate.add_argument("--sample-rate", type=int,
                          help="re-sample every file to this rate first (8000: telephone audio)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k in ("encoder", "host", "port") if (v := getattr(args, k, None))}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    started = time.perf_counter()
    service = VerificationService(settings, load_encoder(settings))
    log.info(
        "model loaded",
        extra={"event": "model_loaded", "model": service.encoder.name,
               "seconds": round(time.perf_counter() - started, 3)},
    )
    if args.command == "serve":
        return serve(service)
    if args.command == "verify":
        return verify(service, args.file1, args.file2, args.threshold)
    return evaluate(service, args.trials, args.root, args.threshold, args.sample_rate)


def serve(service: VerificationService) -> int:
    from analytic.server import make_server
    from analytic.web import create_app

    server = make_server(create_app(service), service.settings)
    log.info("serving http", extra={"event": "http_ready", "host": service.settings.host,
                                    "port": service.settings.port})
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def verify(service: VerificationService, file1: Path, file2: Path, threshold: float | None) -> int:
    try:
        result = service.verify(
            (file1.name, file1.read_bytes()),
            (file2.name, file2.read_bytes()),
            VerificationOptions(threshold=threshold),
        )
    except AnalyticError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
        return 2
    print(result.model_dump_json(indent=2))
    return 0


def evaluate(
    service: VerificationService,
    trials: Path,
    root: Path,
    threshold: float | None,
    sample_rate: int | None,
) -> int:
    from analytic.evaluate import evaluate as run_evaluation
    from analytic.evaluate import read_trials

    report = run_evaluation(service, read_trials(trials), root, threshold, sample_rate)
    print("\n".join(report.lines(service.encoder.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
