"""``latentd models``: inspect model files, build the demo's models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_OK
from latentd.runtime.process import quiet_torchscript_warnings


def cmd_models_inspect(args: argparse.Namespace) -> int:
    from latentd.installation.inspect import inspect_models

    quiet_torchscript_warnings()
    return inspect_models([Path(p) for p in args.files], args.json, sys.stdout)


def cmd_models_build_demo(args: argparse.Namespace) -> int:
    from latentd.modelkit.builder import build_demo_models

    quiet_torchscript_warnings()
    for path in build_demo_models(Path(args.output)):
        print(path)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``models inspect`` and ``models build-demo``."""
    models = sub.add_parser("models", help="inspect or build nn~-format models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = msub.add_parser("inspect", help="print what a model file declares (methods, ratio, sr, tempo table)")
    p.add_argument("files", nargs="+", help=".ts files")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_models_inspect)
    p = msub.add_parser("build-demo", help="build the demo piece's models (small synths in the nn~ format)")
    p.add_argument("--output", default="installation/demo/models", help="folder for the .ts files")
    p.set_defaults(func=cmd_models_build_demo)
