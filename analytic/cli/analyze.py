"""``python -m analytic analyze FILE``: the analysis as JSON on stdout, as ``POST /analyze``
(a readable table with ``--pretty``).

Kept apart from ``main`` so the command line only wires it in (one parser line, one
dispatch line). Options are validated by the same ``AnalysisOptions`` as the HTTP door.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_analyze_parser(commands: Any) -> None:
    """Register the ``analyze`` sub-command on the main parser's sub-parsers."""
    analyze = commands.add_parser(
        "analyze", help="gender and arousal over time for one recording, print JSON"
    )
    analyze.add_argument("file", type=Path)
    analyze.add_argument("--models", default="gender,arousal", help="comma-separated")
    analyze.add_argument("--output-period", type=int, default=1024,
                         help="ms per entry, a positive multiple of 64")
    analyze.add_argument("--volume-threshold", type=float, default=0.005,
                         help="RMS below which an entry is silence (0..1)")
    analyze.add_argument("--summary", action="store_true", help="include_summary")
    analyze.add_argument("--transitions", action="store_true", help="include_transitions")
    analyze.add_argument("--raw", action="store_true", help="include_raw_values")
    analyze.add_argument("--pretty", action="store_true", help="a readable table, not JSON")


def analyze_command(service: Any, args: argparse.Namespace) -> int:
    """Run one analysis; exit 2 with the usual error JSON when the input is refused."""
    from analytic.analysis import parse_analysis_options
    from analytic.cli.output import emit, emit_error
    from analytic.errors import AnalyticError

    try:
        options = parse_analysis_options({
            "models": args.models,
            "output_period": args.output_period,
            "volume_threshold": args.volume_threshold,
            "include_summary": args.summary,
            "include_transitions": args.transitions,
            "include_raw_values": args.raw,
        })
        result = service.analysis.analyze_file(args.file.read_bytes(), args.file.name, options)
    except AnalyticError as exc:
        print(emit_error(exc.code, exc.message, args.pretty))
        return 2
    print(emit(result.payload(), args.pretty))
    return 0
