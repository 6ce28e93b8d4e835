"""``latentd models``: inspect model files, build the demo's models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_OK, add_parser
from latentd.runtime.process import quiet_torchscript_warnings


def cmd_models_inspect(args: argparse.Namespace) -> int:
    """Print each model's contract, as tables or JSON."""
    from latentd.installation.inspect import inspect_models

    quiet_torchscript_warnings()
    return inspect_models([Path(p) for p in args.files], args.json, sys.stdout)


def cmd_models_build_demo(args: argparse.Namespace) -> int:
    """Build the demo piece's models into ``--output``."""
    from latentd.modelkit.builder import build_demo_models

    quiet_torchscript_warnings()
    for path in build_demo_models(Path(args.output)):
        print(path)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``models inspect`` and ``models build-demo``."""
    models = add_parser(sub, "models", help="inspect or build nn~-format models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = add_parser(
        msub,
        "inspect",
        help="print what a model file declares (methods, ratio, sr, tempo table)",
        description="Print what each model file declares: methods, ratio, sr, tempo table. Exit status 2 "
        "when a file cannot be read (the others still print).",
    )
    p.add_argument("files", nargs="+", help=".ts files")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_models_inspect)
    p = add_parser(msub, "build-demo", help="build the demo piece's models (small synths in the nn~ format)")
    p.add_argument("--output", default="installation/demo/models", help="folder for the .ts files")
    p.set_defaults(func=cmd_models_build_demo)
