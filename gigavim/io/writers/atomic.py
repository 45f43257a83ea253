"""Write outputs under a temporary name and move them into place only when complete.

A killed or failing run must never leave something that looks like a finished output, and an
existing output must survive until its replacement is whole. Every output is first written to a
hidden sibling (same directory, so the final move is a rename on one file system), then all of
them are committed together: files with ``os.replace``, directories by renaming the old one
aside, renaming the new one in and deleting the old one last.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import uuid
from pathlib import Path

from gigavim.errors import OutputError

_TMP_TAG = ".gigavim-tmp-"
_OLD_TAG = ".gigavim-old-"
_NEARLY_FULL_BYTES = 1 << 20


def check_writable(dest: Path, *, overwrite: bool) -> None:
    """Fail before any work when ``dest`` cannot be (re)written: exists, or parent unusable."""
    if dest.exists() or dest.is_symlink():
        if not overwrite:
            raise OutputError(f"{dest}: output already exists (use --overwrite to replace it)")
        if dest.is_dir() and not dest.is_symlink() and not is_gigavim_output(dest):
            raise OutputError(f"{dest}: is a directory that is not a gigavim output; refusing to "
                              "delete it even with --overwrite (move it away or choose another output)")
    parent = dest.parent
    if not parent.is_dir():
        raise OutputError(f"{dest}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{dest}: output directory {parent} is not writable")


def is_gigavim_output(path: Path) -> bool:
    """A directory gigavim wrote: a zarr group whose root attributes carry ``gigavim`` provenance.

    ``--overwrite`` deletes the previous output once its replacement is complete; a directory
    tree that is not recognisably ours (someone's data, a home folder) is never deleted."""
    for meta, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            doc = json.loads((path / meta).read_text())
        except (OSError, ValueError):
            continue
        attrs = doc.get(key) if key and isinstance(doc, dict) else doc
        if isinstance(attrs, dict) and "gigavim" in attrs:
            return True
    return False


def temporary_sibling(dest: Path, tag: str = _TMP_TAG) -> Path:
    """A hidden, unique name next to ``dest`` (same file system, so renames are atomic)."""
    return dest.parent / f".{dest.name}{tag}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(dest: Path) -> list[Path]:
    """Clean up after a run of ``dest`` that was killed (its writer process is gone).

    A SIGKILLed run cannot clean up after itself; its hidden leftovers carry its PID, so the
    next run deals with those whose process no longer exists and leaves live writers alone:
    unfinished temporaries are deleted; a previous output set aside for replacement is put back
    if the run died before its replacement moved in, and deleted otherwise.
    """
    removed = []
    for tag in (_OLD_TAG, _TMP_TAG):
        for leftover in sorted(dest.parent.glob(f".{glob.escape(dest.name)}{tag}*")):
            pid_text = leftover.name[len(f".{dest.name}{tag}") :].split("-", 1)[0]
            if not pid_text.isdigit() or _pid_alive(int(pid_text)):
                continue
            if tag == _OLD_TAG and not (dest.exists() or dest.is_symlink()):
                os.rename(leftover, dest)
                continue
            remove_path(leftover)
            removed.append(leftover)
    return removed


def remove_path(path: Path) -> None:
    """Delete a file or directory tree if present; used to clean temporaries, never outputs."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def commit(tmp: Path, dest: Path) -> None:
    """Move a finished temporary into place; an existing ``dest`` is replaced only at the end."""
    if not (dest.exists() or dest.is_symlink()):
        os.rename(tmp, dest)
        return
    if tmp.is_file() and dest.is_file():
        os.replace(tmp, dest)
        return
    old = temporary_sibling(dest, _OLD_TAG)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)  # put the previous output back untouched
        raise
    remove_path(old)


def disk_nearly_full(dest: Path, needed_bytes: int = 0) -> bool:
    """Whether the output's file system lacks ``needed_bytes`` (plus a little) of free space.

    GDAL reports a full disk as a vague "write failed" or a later read failure, and deletes a
    failed copy, so its writers ask this right after a failure with what they still needed.
    """
    try:
        return shutil.disk_usage(dest.parent).free < needed_bytes + _NEARLY_FULL_BYTES
    except OSError:
        return False


def write_error_message(dest: Path, err: Exception) -> str:
    """One line for the user: the output and what went wrong while writing it."""
    text = str(err).strip()
    # Only OSError.errno is an errno; GDAL's CPLE errors reuse the name for their error class.
    code = err.errno if isinstance(err, OSError) else None
    if code == errno.ENOSPC or "no space left" in text.lower():
        return f"{dest}: no space left on the device while writing the output"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{dest}: permission denied while writing the output"
    strerror = err.strerror if isinstance(err, OSError) else None
    reason = strerror or (text.splitlines()[0] if text else type(err).__name__)
    return f"{dest}: cannot write the output ({reason})"
