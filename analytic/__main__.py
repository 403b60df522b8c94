"""Command line: ``python -m analytic serve | verify A B | evaluate --trials CSV --root DIR``.

Everything is built once here (settings, logging, encoder, service, app) and handed down.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from analytic.cli_analysis import add_analyze_parser, analyze_command
from analytic.cli_output import Progress, emit, progress_bars, wants_progress
from analytic.encoders import ENCODER_NAMES, load_encoder
from analytic.errors import AnalyticError
from analytic.logs import configure_logging
from analytic.schemas import VerificationOptions
from analytic.service import VerificationService
from analytic.settings import Settings

if TYPE_CHECKING:
    from analytic.evaluate import Report

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
    verify.add_argument("--pretty", action="store_true", help="a readable table, not JSON")

    evaluate = commands.add_parser("evaluate", help="EER, error rates and minDCF of a trial list")
    evaluate.add_argument("--trials", type=Path, help="CSV: enroll,test,target")
    evaluate.add_argument("--root", type=Path, help="folder the paths start in")
    # --- the household, open set (analytic/openset.py) ---
    evaluate.add_argument("--household", metavar="CORPUS",
                          help="open-set household figures on one corpus of --data (instead "
                          "of --trials): members named, told unknown, confused; strangers named")
    evaluate.add_argument("--data", type=Path, default=Path("../shared/data"),
                          help="--household: the folder holding the corpora (../shared/data)")
    evaluate.add_argument("--half", choices=("dev", "test"), default="test",
                          help="--household: which speaker half (bench/splits) to draw from")
    evaluate.add_argument("--members", default="1,3,5,10,20", metavar="M,...",
                          help="--household: household sizes")
    evaluate.add_argument("--enroll", default="1,3", metavar="K,...",
                          help="--household: enrolment clips per member")
    evaluate.add_argument("--households", type=int, default=20,
                          help="--household: households drawn (seeded) per size")
    evaluate.add_argument("--cache", type=Path, metavar="DIR",
                          help="--household: keep embeddings in DIR between runs")
    evaluate.add_argument("--threshold", type=float, help="report error rates at this threshold")
    evaluate.add_argument("--sample-rate", type=int,
                          help="re-sample every file to this rate first (8000: telephone audio)")
    evaluate.add_argument("--test-sample-rate", type=int,
                          help="re-sample the test side only to this rate (mixed pairs)")
    # --- household voiceprints (docs/household.md) ---
    evaluate.add_argument("--norm", choices=("none", "asnorm"), default="none",
                          help="score normalisation: raw cosine, or AS-norm against the cohort")
    evaluate.add_argument("--enroll-samples", type=int, default=1, metavar="N",
                          help="enrol from N utterances per trial (analytic.enrol_trials)")
    evaluate.add_argument("--enroll-model", choices=("mean", "centroid"), default="mean",
                          help="N>1: mean of per-sample scores (the service's) or centroid")
    evaluate.add_argument("--top-k", type=int, help="AS-norm: cohort members kept per side")
    evaluate.add_argument("--plots", type=Path, metavar="DIR",
                          help="also write a DET curve and a score histogram (PNG) into DIR")
    evaluate.add_argument("--no-progress", action="store_true",
                          help="no progress bar (there is none anyway when stderr is no TTY)")
    enroll = commands.add_parser("enroll", help="enrol a household member from recordings")
    enroll.add_argument("external_id")
    enroll.add_argument("files", type=Path, nargs="+")
    enroll.add_argument("--replace", action="store_true", help="start over instead of adding")
    enroll.add_argument("--pretty", action="store_true", help="a readable table, not JSON")
    identify = commands.add_parser("identify", help="who in the household is speaking, if anyone")
    identify.add_argument("file", type=Path)
    identify.add_argument("--threshold", type=float)
    identify.add_argument("--pretty", action="store_true", help="a readable table, not JSON")
    add_analyze_parser(commands)
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
        return verify(service, args.file1, args.file2, args.threshold, args.pretty)
    if args.command == "analyze":
        return analyze_command(service, args)
    if args.command in ("enroll", "identify"):
        return household_command(service, args)
    if args.household:
        return evaluate_openset(service, args)
    if args.trials is None or args.root is None:
        print("voicegate: evaluate needs --trials and --root, or --household CORPUS",
              file=sys.stderr)
        return 2
    if args.norm != "none" or args.enroll_samples != 1 or args.top_k:
        return evaluate_household(service, args)
    return evaluate(service, args.trials, args.root, args.threshold, args.sample_rate,
                    args.test_sample_rate, args)


def serve(service: VerificationService) -> int:
    """HTTP and, when ``mqtt_enabled``, the bus adapter, in one process sharing one model.

    Both doors share one household service too: one store connection, one set of stream
    sessions, and one listener list, so an identification over HTTP reaches the bus's speaker
    topic. The adapter connects in the background, so HTTP serves whether or not a broker is
    there (``/health`` says ``bus: disconnected`` meanwhile). With ``sifis_dht_url`` every
    verification result is also forwarded to the SIFIS-Home DHT, from its own thread, so a
    missing DHT never holds up an answer either (``dht: disconnected``). SIGTERM and SIGINT
    stop all of it cleanly: queued bus requests are finished, ``offline`` is published, the
    session is left for the next start, and the voiceprint store is closed last.
    """
    from analytic.auth import bind_refusal, log_access_mode
    from analytic.dht import DhtForwarder
    from analytic.household import build_household
    from analytic.server import make_server
    from analytic.voiceprints.crypto import VoiceprintKeyError
    from analytic.voiceprints.store import StoreError
    from analytic.web import create_app

    settings = service.settings
    if refusal := bind_refusal(settings):  # no token: loopback only, unless opted in
        log.error(refusal, extra={"event": "refused_to_start", "host": settings.host})
        print(f"voicegate: {refusal}", file=sys.stderr)
        return 2
    log_access_mode(settings)
    try:
        household = build_household(service)  # opens the store: a bad store stops start-up
    except (StoreError, VoiceprintKeyError) as exc:
        log.error("voiceprint store unusable", extra={"event": "refused_to_start",
                                                      "reason": str(exc)})
        print(f"voicegate: {exc}", file=sys.stderr)
        return 2
    adapter = None
    dht = DhtForwarder.from_settings(settings)
    try:
        if settings.mqtt_enabled:
            from bus_adapter.adapter import BusAdapter

            adapter = BusAdapter(service, household=household)
        if dht is not None:
            service.add_result_listener(dht.listener)
        app = create_app(service, bus_status=adapter.status if adapter else None,
                         household=household, dht_status=dht.status if dht else None)
        server = make_server(app, settings)  # binds first: a busy port fails before the bus
        signal.signal(signal.SIGTERM, _stop_on_signal)
        if adapter is not None:
            adapter.start()
        if dht is not None:
            dht.start()
        log.info("serving http", extra={"event": "http_ready", "host": settings.host,
                                        "port": settings.port})
        try:
            server.run()  # waitress returns (swallowing KeyboardInterrupt) on Ctrl-C, SIGTERM
        except KeyboardInterrupt:
            pass
        finally:
            log.info("stopping", extra={"event": "stopping"})
            server.close()
            if adapter is not None:
                adapter.stop()
            if dht is not None:
                dht.stop()
    finally:
        household.close()
    return 0


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM (docker stop, systemd) takes the same clean path as Ctrl-C."""
    raise KeyboardInterrupt


def verify(
    service: VerificationService, file1: Path, file2: Path, threshold: float | None,
    pretty: bool = False,
) -> int:
    try:
        result = service.verify(
            (file1.name, file1.read_bytes()),
            (file2.name, file2.read_bytes()),
            VerificationOptions(threshold=threshold),
            privileged=True,  # the command line is the operator, who may also edit the settings
        )
    except AnalyticError as exc:
        print(emit({"error": {"code": exc.code, "message": exc.message}}, pretty))
        return 2
    print(emit(result, pretty))
    return 0


def evaluate(
    service: VerificationService,
    trials: Path,
    root: Path,
    threshold: float | None,
    sample_rate: int | None,
    test_sample_rate: int | None,
    args: argparse.Namespace | None = None,
) -> int:
    from analytic.evaluate import evaluate as run_evaluation
    from analytic.evaluate import read_trials

    report = run_evaluation(service, read_trials(trials), root, threshold, sample_rate,
                            test_sample_rate, evaluation_progress(args))
    print("\n".join([*report.lines(service.encoder.name), *write_plots(report, trials, args)]))
    return 0


def evaluation_progress(args: argparse.Namespace | None) -> Progress:
    """Bars on stderr for a person at a terminal; none in pipes, CI, or with --no-progress."""
    return progress_bars(wants_progress(bool(args and args.no_progress)))


def write_plots(report: Report, trials: Path, args: argparse.Namespace | None) -> list[str]:
    """``--plots DIR``: the DET curve and histogram; lines naming the files written."""
    if args is None or args.plots is None or report.scores is None or report.is_target is None:
        return []
    from analytic.plots import write_plots as draw

    written = draw(report.scores, report.is_target, report.threshold, report.eer_threshold,
                   args.plots, title=trials.name)
    return [f"plot: {path}" for path in written]


def household_command(service: VerificationService, args: argparse.Namespace) -> int:
    """``enroll`` and ``identify`` against the configured store; JSON out, as HTTP answers
    (a table with ``--pretty``)."""
    from analytic.household import build_household
    from analytic.schemas import EnrolOptions, HouseholdOptions
    from analytic.voiceprints.crypto import VoiceprintKeyError
    from analytic.voiceprints.store import StoreError

    try:
        household = build_household(service)
    except (StoreError, VoiceprintKeyError) as exc:
        print(emit({"error": {"code": "store_unavailable", "message": str(exc)}}, args.pretty))
        return 2
    try:
        if args.command == "enroll":
            options = EnrolOptions(external_id=args.external_id, replace=args.replace)
            result = household.enrol(options, [(f.name, f.read_bytes()) for f in args.files])
        else:
            result = household.identify((args.file.name, args.file.read_bytes()),
                                        HouseholdOptions(threshold=args.threshold),
                                        privileged=True)  # the operator's own command line
    except AnalyticError as exc:
        print(emit({"error": {"code": exc.code, "message": exc.message}}, args.pretty))
        return 2
    finally:
        household.close()
    print(emit(result, args.pretty))
    return 0


def evaluate_household(service: VerificationService, args: argparse.Namespace) -> int:
    """``evaluate --norm asnorm --enroll-samples N``: multi-sample enrolment and AS-norm."""
    from analytic.enrol_trials import read_speakers
    from analytic.evaluate import EnrolmentSetup, evaluate_enrolment, read_trials

    setup = EnrolmentSetup(args.enroll_samples, args.enroll_model, args.norm, args.top_k)
    report, scoring = evaluate_enrolment(service, read_trials(args.trials), args.root, setup,
                                         args.threshold, args.sample_rate,
                                         read_speakers(args.trials), evaluation_progress(args))
    print("\n".join([*report.lines(service.encoder.name), scoring,
                     *write_plots(report, args.trials, args)]))
    return 0


def evaluate_openset(service: VerificationService, args: argparse.Namespace) -> int:
    """``evaluate --household CORPUS``: the open-set table, per household size and enrolment."""
    import soundfile as sf

    from analytic.audio import TARGET_RATE
    from analytic.corpora import by_speaker, corpus_files, embed_corpus
    from analytic.openset import HEADER, simulate
    from analytic.policy import household_threshold

    try:
        members = [int(m) for m in args.members.split(",")]
        enrolments = [int(k) for k in args.enroll.split(",")]
        files = corpus_files(args.data, args.household, args.half)
    except (ValueError, OSError) as exc:
        print(f"voicegate: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"voicegate: no {args.half} files in {args.data / args.household}", file=sys.stderr)
        return 2
    progress = evaluation_progress(args)
    prints = embed_corpus(service, args.data, files, progress, args.cache)
    rate = sf.info(str(args.data / files[0].corpus / files[0].path)).samplerate
    bandwidth = min(rate, TARGET_RATE)
    policy = service.policy

    def threshold(m: int) -> float:
        return household_threshold(service.settings, policy, m, bandwidth)

    speakers = by_speaker(files)
    print(f"encoder: {service.encoder.name}, scores: {policy.score_norm}, false accept target "
          f"{policy.false_accept:g} per attempt")
    print(f"{args.household} {args.half} half: {len(speakers)} speakers, {len(files)} files "
          f"({sum(v is None for v in prints.values())} refused by the intake), {rate} Hz")
    print(HEADER)
    cells = [(m, k) for m in members for k in enrolments]
    for m, k in progress(cells, "households"):
        figures = simulate(speakers, prints, policy.scorer, threshold, m, k, args.households)
        if figures is None:
            print(f"| {m} | {k} | fewer than {m} speakers with more than {k} clips | | | | | | |")
        else:
            print(figures.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
