"""The ``latentd`` command line: a thin layer that builds one configuration and calls the library."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from latentd import __version__
from latentd.app import configure_process, quiet_torchscript_warnings

# Modules that add their own subcommands (each has ``add_commands(subparsers)``).
COMMAND_MODULES = (
    "latentd.unravel.cli",
    "latentd.recording_cli",
    "latentd.control.osc_cli",
    "latentd.control.schedule_cli",
)

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INVALID = 2


def _config_errors(exc: Exception) -> int:
    sys.stderr.write(f"{exc}\n")
    return EXIT_INVALID


def cmd_check(args: argparse.Namespace) -> int:
    """Validate both files, load every model, decode one block per voice; print every problem at once."""
    from latentd.config import ConfigError, load_config
    from latentd.diffusion.piece_pools import check_pools
    from latentd.engine.engine import Engine
    from latentd.installation.piece import load_installation

    try:
        config = load_config(args.config)
        configure_process(config.venue.audio.torch_threads)
        installation = load_installation(config)
        engine = Engine(installation, fade_in_s=0.0, live_loads=False)
        for group in engine.groups:
            group.fill(engine.blocksize)
            if group.faulted_rows:
                names = [group.voices[r].name for r in group.faulted_rows]
                raise ConfigError.single(
                    installation.piece_file,
                    f"models.{group.name}.path",
                    str(config.piece.models[group.name].path),
                    f"decode produced NaN/Inf for voice(s) {', '.join(names)}",
                )
        pool_lines = check_pools(
            config, {n: installation.models[v.model].info.latent_size for n, v in config.piece.voices.items()}
        )
    except ConfigError as exc:
        return _config_errors(exc)
    layout = installation.layout
    print(
        f"ok: {args.config}: piece {config.piece.name!r}, {len(installation.models)} model(s), "
        f"{len(engine.voices)} voice(s), {len(config.piece.sections)} section(s), "
        f"layout {layout.name} ({layout.n_channels} ch) at {engine.samplerate} Hz"
    )
    for name, model in installation.models.items():
        i = model.info
        print(
            f"  model {name}: {i.path.name} latent_size {i.latent_size} ratio {i.ratio} sr {i.sr} "
            f"channels {i.n_channels} streaming {'yes' if i.streaming else 'NO'}"
        )
    for line in pool_lines:
        print(line)
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults filled in, paths resolved)."""
    from latentd.config import ConfigError, load_config, print_effective

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _config_errors(exc)
    print_effective(config, sys.stdout)
    return EXIT_OK


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


def cmd_render(args: argparse.Namespace) -> int:
    """Render the piece offline, faster than real time, with the engine used for live playback."""
    from latentd.config import ConfigError, load_config
    from latentd.engine.engine import Engine
    from latentd.installation.piece import load_installation
    from latentd.logs import setup_logging
    from latentd.render import render

    try:
        config = load_config(args.config)
        setup_logging(config.venue.logging.level, config.venue.logging.format)
        configure_process(config.venue.audio.torch_threads)
        installation = load_installation(config, seed=args.seed)
        engine = Engine(installation, live_loads=False)  # offline: swaps land where asked
    except ConfigError as exc:
        return _config_errors(exc)
    try:
        summary = render(engine, args.seconds, Path(args.output))
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    summary.print(sys.stdout)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Play the piece live on JACK until a signal (or ``--duration``) stops it."""
    from latentd.config import ConfigError
    from latentd.control.osc import OscServerError
    from latentd.live import run_from_file
    from latentd.outputs.jack_out import JackOutputError
    from latentd.outputs.jackd import JackServerError

    try:
        return run_from_file(args.config, args.duration, record=args.record, label=args.label)
    except ConfigError as exc:
        return _config_errors(exc)
    except (JackOutputError, JackServerError) as exc:
        sys.stderr.write(f"JACK: {exc}\n")
        return EXIT_FAIL
    except OscServerError as exc:
        sys.stderr.write(f"OSC: {exc}\n")
        return EXIT_FAIL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentd",
        description="Performs neural-audio works unattended: nn~ models, latent trajectories, JACK output.",
    )
    parser.add_argument("--version", action="version", version=f"latentd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", type=Path, required=True, help="venue config (configs/*.toml)")

    p = sub.add_parser("check", help="validate the config and piece, load models, decode one block per voice")
    config_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("config", help="print the effective configuration")
    config_arg(p)
    p.set_defaults(func=cmd_config)

    models = sub.add_parser("models", help="inspect or build nn~-format models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = msub.add_parser("inspect", help="print what a model file declares (methods, ratio, sr, tempo table)")
    p.add_argument("files", nargs="+", help=".ts files")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_models_inspect)
    p = msub.add_parser("build-demo", help="build the demo piece's models (small synths in the nn~ format)")
    p.add_argument("--output", default="installation/demo/models", help="folder for the .ts files")
    p.set_defaults(func=cmd_models_build_demo)

    p = sub.add_parser("run", help="play the piece live on JACK (the main job)")
    config_arg(p)
    p.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop cleanly after this time"
    )
    p.add_argument("--record", action="store_true", help="record the master bus from the start")
    p.add_argument("--label", default="", help="added to the recording's file names")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("render", help="render the piece offline into an N-channel file")
    config_arg(p)
    p.add_argument("--seconds", type=float, required=True, help="length of the render")
    p.add_argument("--output", "-o", required=True, help="output file (.wav, .w64, .rf64, .flac)")
    p.add_argument("--seed", type=int, default=None, help="override the piece's seed")
    p.set_defaults(func=cmd_render)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``latentd`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
