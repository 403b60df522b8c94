"""The command line: it reads the settings, loads the model once and wires the doors (``serve``)
or runs one command. Entry points: the ``voicegate`` script and ``python -m analytic``."""

from analytic.cli.main import main

__all__ = ["main"]
