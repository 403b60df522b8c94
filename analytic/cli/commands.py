"""``verify``, ``enrol`` and ``identify``: one answer as JSON on stdout (a table with
``--pretty``), exactly what HTTP answers.

Exit status, so that shell scripts and home-automation ``command_line`` sensors can branch
without parsing JSON: ``verify`` and ``identify`` exit 0 when the answer is yes (same speaker;
a member named), 1 when it is no (different speaker; unknown), and 2 for any error (refused
input, unreadable store); ``enrol`` exits 0 or 2.
"""

from __future__ import annotations

import argparse

from pydantic import BaseModel

from analytic.cli.output import emit, emit_error
from analytic.errors import AnalyticError
from analytic.schemas import EnrolOptions, HouseholdOptions, VerificationOptions
from analytic.service import VerificationService

YES, NO, ERROR = 0, 1, 2


def verify(service: VerificationService, args: argparse.Namespace) -> int:
    """Compare two recordings."""
    file1, file2 = args.file1, args.file2
    try:
        result = service.verify(
            (file1.name, file1.read_bytes()),
            (file2.name, file2.read_bytes()),
            VerificationOptions(threshold=args.threshold),
            privileged=True,  # the command line is the operator, who may also edit the settings
        )
    except AnalyticError as exc:
        return _refused(exc, args.pretty)
    print(emit(result, args.pretty))
    return YES if result.decision else NO


def household_command(service: VerificationService, args: argparse.Namespace) -> int:
    """``enrol`` and ``identify`` against the configured store."""
    from analytic.household import build_household
    from analytic.voiceprints.crypto import VoiceprintKeyError
    from analytic.voiceprints.store import StoreError

    try:
        household = build_household(service)
    except (StoreError, VoiceprintKeyError) as exc:
        print(emit_error("store_unavailable", str(exc), args.pretty))
        return ERROR
    try:
        result: BaseModel
        if args.command == "enrol":
            options = EnrolOptions(external_id=args.external_id, replace=args.replace)
            result = household.enrol(options, [(f.name, f.read_bytes()) for f in args.files])
            status = YES
        else:
            identified = household.identify((args.file.name, args.file.read_bytes()),
                                            HouseholdOptions(threshold=args.threshold),
                                            privileged=True)  # the operator's own command line
            result, status = identified, YES if identified.decision else NO
    except AnalyticError as exc:
        return _refused(exc, args.pretty)
    finally:
        household.close()
    print(emit(result, args.pretty))
    return status


def _refused(exc: AnalyticError, pretty: bool) -> int:
    print(emit_error(exc.code, exc.message, pretty))
    return ERROR
