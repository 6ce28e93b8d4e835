"""The places latentd writes to: the state file, recordings, renders and pool folders.

Every one is named by the configuration (:func:`writable_places`); :func:`writable_problems` says which
of them the running user cannot write, and why. ``latentd check`` refuses those (run it as the service's
user); ``latentd run`` logs them as warnings. Installed as a service, they all live in the service's
data folder ``/var/lib/latentd`` (systemd's ``StateDirectory=``): everything else is read-only to it.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from latentd.config.checks import _join
from latentd.config.problems import Problem
from latentd.config.toml_out import _key

if TYPE_CHECKING:
    from latentd.config.loader import Config


class Place(NamedTuple):
    """A place latentd writes to, as the configuration names it.

    Attributes:
        file: The config file that names it.
        key: Its key there.
        value: The value as written (relative or absolute).
        path: The absolute path.
        folder: True for a folder, False for a file.
    """

    file: Path
    key: str
    value: str
    path: Path
    folder: bool


def writable_places(config: Config) -> list[Place]:
    """Every place latentd writes to: the state file, the recordings and renders folders (relative to
    the venue config) and each pool's items folder (relative to the piece folder)."""
    venue, here, file = config.venue, config.venue_path.parent, config.venue_path
    state, recordings, renders = venue.schedule.state_file, venue.recording.folder, venue.output.render_dir
    places = [
        Place(file, "schedule.state_file", state, _join(here, state), folder=False),
        Place(file, "recording.folder", recordings, _join(here, recordings), folder=True),
        Place(file, "output.render_dir", renders, _join(here, renders), folder=True),
    ]
    for name, pool in config.piece.pools.items():
        folder = pool.folder_for(name)
        places.append(
            Place(config.piece_file, f"pools.{_key(name)}.folder", folder, config.piece_path(folder), True)
        )
    return places


def writable_problems(config: Config) -> list[Problem]:
    """The places latentd writes to that this user cannot write, or that are of the wrong kind.

    A folder may be missing as long as it can be made: its nearest existing parent must be a writable
    folder. The state file is replaced atomically (a temporary file beside it, then a rename), so its
    folder must be writable too, and the file itself must not be a folder.
    """
    problems = []
    for place in writable_places(config):
        path = place.path
        try:
            is_dir: bool | None = stat.S_ISDIR(path.stat().st_mode)
        except OSError:
            is_dir = None  # missing, or not reachable: _unwritable says which
        if not place.folder and is_dir:
            reason: str | None = f"{path} is a folder: give the path of a file (it is replaced whole)"
        elif place.folder and is_dir is False:
            reason = f"{path} is a file, not a folder"
        else:
            reason = _unwritable(path if place.folder else path.parent)
        if reason:
            problems.append(Problem(place.file, place.key, place.value, reason))
    return problems


def _unwritable(folder: Path) -> str | None:
    """Why this user cannot write in ``folder`` (made if missing), or None when it can."""
    existing = folder
    while True:
        try:
            existing.stat()
            break
        except (FileNotFoundError, NotADirectoryError):
            if existing == existing.parent:
                break
            existing = existing.parent
        except PermissionError:
            return (
                f"cannot reach {folder}: permission denied for user {_user(os.getuid())} on a folder "
                "above it (it needs the x permission on every folder of the path)"
            )
    made = "" if existing == folder else f" (to make {folder})"
    if not existing.is_dir():
        return f"cannot make {folder}: {existing} is a file"
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return (
            f"cannot write in {existing}{made}: read-only file system; writable paths belong in the data "
            "folder (installed: /var/lib/latentd)"
        )
    info = existing.stat()
    return (
        f"cannot write in {existing}{made}: permission denied for user {_user(os.getuid())} (the folder "
        f"belongs to {_user(info.st_uid)}, mode {info.st_mode & 0o7777:04o})"
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
