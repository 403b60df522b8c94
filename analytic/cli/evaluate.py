"""``evaluate``: pair trials, multi-sample enrolment with AS-norm, the open-set household, or
pair trials under degradations (``--conditions``, docs/robustness.md).

The work is in ``analytic/lab/``; this module only reads the options and prints the report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analytic.lab.condition_names import CONDITION_HELP, DEFAULT_CONDITIONS
from analytic.lab.progress import Progress, progress_bars, wants_progress

if TYPE_CHECKING:
    from analytic.lab.evaluate import Report
    from analytic.service import VerificationService


def add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` and its options."""
    evaluate = commands.add_parser("evaluate", help="EER, error rates and minDCF of a trial list")
    evaluate.add_argument("--trials", type=Path, help="CSV: enroll,test,target")
    evaluate.add_argument("--root", type=Path, help="folder the paths start in")
    # --- the household, open set (analytic/lab/openset.py) ---
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
                          help="enrol from N utterances per trial (analytic.lab.enrol_trials)")
    evaluate.add_argument("--enroll-model", choices=("mean", "centroid"), default="mean",
                          help="N>1: mean of per-sample scores (the service's) or centroid")
    evaluate.add_argument("--top-k", type=int, help="AS-norm: cohort members kept per side")
    evaluate.add_argument("--plots", type=Path, metavar="DIR",
                          help="also write a DET curve and a score histogram (PNG) into DIR")
    # --- robustness (analytic/lab/conditions.py, docs/robustness.md) ---
    evaluate.add_argument("--conditions", metavar="NAME,...", nargs="?",
                          const=DEFAULT_CONDITIONS,
                          help="a table of EER and FR / FA at the shipped thresholds per "
                          "degradation of the test side, e.g. clean,babble10,room0.5,telephone "
                          f"(alone: {DEFAULT_CONDITIONS}); names: {', '.join(CONDITION_HELP)}; "
                          "noise and babble from --data, in the --half part")
    evaluate.add_argument("--degrade-enrol", action="store_true",
                          help="--conditions: degrade the enrolment side too")
    evaluate.add_argument("--mixed-low-cut", type=float, default=0.0, metavar="HZ",
                          help="--conditions, an experiment: also cut both sides of a "
                          "wideband/narrowband pair below HZ (the service does not)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="--conditions: seed of every random choice (noise, babble)")
    evaluate.add_argument("--no-progress", action="store_true",
                          help="no progress bar (there is none anyway when stderr is no TTY)")


def evaluate_command(service: VerificationService, args: argparse.Namespace) -> int:
    """Which of the three evaluations the options ask for."""
    if args.household:  # else --trials and --root are there (checked before the model loaded)
        return evaluate_openset(service, args)
    if args.conditions:
        return evaluate_conditions(service, args)
    if args.norm != "none" or args.enroll_samples != 1 or args.top_k:
        return evaluate_household(service, args)
    return evaluate_pairs(service, args)


def evaluate_pairs(service: VerificationService, args: argparse.Namespace) -> int:
    """``evaluate --trials CSV --root DIR``: EER, error rates at the threshold, minDCF."""
    from analytic.lab.evaluate import evaluate as run_evaluation
    from analytic.lab.evaluate import read_trials

    report = run_evaluation(service, read_trials(args.trials), args.root, args.threshold,
                            args.sample_rate, args.test_sample_rate, evaluation_progress(args))
    print("\n".join([*report.lines(service.encoder.name),
                     *write_plots(report, args.trials, args)]))
    return 0


def evaluate_conditions(service: VerificationService, args: argparse.Namespace) -> int:
    """``evaluate --trials CSV --root DIR --conditions LIST``: the robustness table."""
    from analytic.lab.conditions import named_conditions
    from analytic.lab.evaluate import read_trials
    from analytic.lab.robustness import (
        ServiceScorer,
        Trial,
        babble_clips,
        format_table,
        load_sound,
        run_conditions,
    )

    try:
        conditions = named_conditions(args.conditions, args.data / "noise", args.half,
                                      lambda: babble_clips(args.data, args.half))
    except (ValueError, OSError) as exc:
        print(f"voicegate: {exc}", file=sys.stderr)
        return 2
    trials = [Trial(t.enroll, t.test, t.target) for t in read_trials(args.trials)]
    progress = evaluation_progress(args)
    threshold = args.threshold if args.threshold is not None else service.threshold_for
    scorer = ServiceScorer(service, progress, args.mixed_low_cut)
    results = run_conditions(conditions, trials, lambda key: load_sound(args.root / key),
                             scorer, threshold, args.seed, args.degrade_enrol, progress)
    targets = sum(t.target for t in trials)
    print(f"encoder: {service.encoder.name}, scores: {service.policy.score_norm}; "
          f"{args.trials.name}: {targets} target / {len(trials) - targets} non-target pairs; "
          f"{'both sides' if args.degrade_enrol else 'test side'} degraded, seed {args.seed}, "
          f"noise part {args.half}"
          f"{f', mixed pairs cut below {args.mixed_low_cut:g} Hz' if args.mixed_low_cut else ''}"
          "; refused pairs count as rejections")
    print(format_table(results))
    return 0


def evaluation_progress(args: argparse.Namespace | None) -> Progress:
    """Bars on stderr for a person at a terminal; none in pipes, CI, or with --no-progress."""
    return progress_bars(wants_progress(bool(args and args.no_progress)))


def write_plots(report: Report, trials: Path, args: argparse.Namespace | None) -> list[str]:
    """``--plots DIR``: the DET curve and histogram; lines naming the files written."""
    if args is None or args.plots is None or report.scores is None or report.is_target is None:
        return []
    from analytic.lab.plots import write_plots as draw

    written = draw(report.scores, report.is_target, report.threshold, report.eer_threshold,
                   args.plots, title=trials.name)
    return [f"plot: {path}" for path in written]


def evaluate_household(service: VerificationService, args: argparse.Namespace) -> int:
    """``evaluate --norm asnorm --enroll-samples N``: multi-sample enrolment and AS-norm."""
    from analytic.lab.enrol_trials import read_speakers
    from analytic.lab.evaluate import EnrolmentSetup, evaluate_enrolment, read_trials

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
    from analytic.lab.corpora import by_speaker, corpus_files, embed_corpus
    from analytic.lab.openset import HEADER, simulate
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
