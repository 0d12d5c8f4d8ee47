"""The one boundary for untrusted input: files opened only if regular, read with a bound, and
strings made safe to show (one line, escaped, bounded) or, when they failed validation, only
described; pip lines only from names and versions that ``packaging`` accepts."""

from __future__ import annotations

import errno
import io
import os
import re
import shlex
import stat
from pathlib import Path
from typing import Final

from layerhub._private.errors import ModelFileError

MAX_SHOWN: Final = 120
# Paths are the user's own, and often long; bounded all the same, since a hub cache or a file
# name can come from elsewhere.
MAX_PATH: Final = 400
# Longer names and versions are valid to packaging but are no real distribution's; a pip line
# built from them would swamp the message.
MAX_NAME: Final = 100
_IDENTIFIER_PATH: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# Reads go in blocks this large; the bound is checked after each one.
_BLOCK: Final = 1 << 20


def shown(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` (a non-string: its ``repr``) as one printable line of at most ``limit``
    characters, plus an ellipsis when cut.

    The one escaping function for every sink (messages, warnings, CLI tables, JSON, logs):
    every character a terminal would act on, or that cannot be encoded, is written as its
    Python escape (``\\x1b``, ``\\n``, ``\\u202e``, ``\\ud800``); an escape is never cut in two.
    """
    text = text if isinstance(text, str) else _safe_repr(text)
    pieces: list[str] = []
    size = 0
    # Only the first ``limit + 1`` characters can appear: a 64 MiB string costs no more.
    for char in text[: limit + 1]:
        piece = _escaped(char)
        if size + len(piece) > limit:
            return "".join(pieces) + "..."
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces) + ("..." if len(text) > limit else "")


def _escaped(char: str) -> str:
    # str.isprintable is false for every "Other" and "Separator" character but the space:
    # controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
    # joiners, BOM, tags), lone surrogates (which cannot even be encoded to UTF-8), private-use
    # and unassigned code points, line and paragraph separators, and unusual spaces.
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a hostile __repr__ (or a huge int) must not escape from a message
        return f"<{type(value).__name__}>"


def shown_path(path: str | os.PathLike[str]) -> str:
    """A file path as :func:`shown` gives it, bounded at ``MAX_PATH`` characters."""
    try:
        return shown(os.fspath(path), MAX_PATH)
    except TypeError:  # os.fspath of bytes-like or odd path objects
        return shown(path, MAX_PATH)


def described(text: object) -> str:
    """What ``text`` (any decoded value) is, by kind and size, without any of its content.

    For strings that failed validation: text such as ``pip install evil-pkg`` must not reach
    the screen even escaped, so only its shape is reported.
    """
    value = text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"text of {len(value)} character{'' if len(value) == 1 else 's'}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} byte{'' if len(value) == 1 else 's'}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"an object of {len(value)} key{'' if len(value) == 1 else 's'}"
    return f"a value of type {shown(type(value).__name__, 40)}"


# -- files --------------------------------------------------------------------------------------

_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_REASONS: Final = {
    errno.ENOENT: "does not exist",
    errno.ENOTDIR: "does not exist (a part of its path is not a directory)",
    errno.ENAMETOOLONG: "has a name longer than the file system allows",
    errno.ELOOP: "is a symlink loop (or too many symlinks deep)",
    errno.EACCES: "cannot be read (permission denied)",
    errno.EPERM: "cannot be read (operation not permitted)",
    errno.EISDIR: "is a directory, not a regular file",
    errno.ENXIO: "is a device or socket, not a regular file",
}


def os_reason(error: BaseException) -> str:
    """Why an OS call on a path failed, in words, without the path (shown elsewhere, escaped).

    Takes what ``os`` functions raise: an ``OSError``, or a ``ValueError`` for a path holding
    a NUL or one that cannot be encoded for the file system (a lone surrogate).
    """
    if isinstance(error, UnicodeError):
        return "is not a valid path (it cannot be encoded for the file system)"
    if not isinstance(error, OSError):
        return "is not a valid path (it holds a NUL character)"
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    reason = os.strerror(error.errno) if error.errno else type(error).__name__
    return f"cannot be read ({shown(reason, 80)})"


def kind_of(mode: int) -> str:
    """A file's type in words (``a named pipe (FIFO)``, ``a regular file``...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((kind for test, kind in _KINDS if test(mode)), "a special file")


def _refused(path: Path, what: str, why: str) -> ModelFileError:
    return ModelFileError(f"{what} {shown_path(path)} {why}; refusing to read it")


def _open_regular(path: Path, what: str) -> tuple[int, os.stat_result]:
    """A descriptor open on ``path``, which is a regular file at the moment it was opened.

    Symlinks are followed, as Keras follows them (a Hugging Face Hub snapshot is a directory
    of symlinks into its blob store); what they lead to must be a regular file. ``stat`` first,
    so that a device is never opened at all (opening some rewinds tapes or hangs up lines);
    then ``O_NONBLOCK``, so that a file swapped for a FIFO in between cannot block the open,
    and ``fstat`` on the descriptor, which is what is read.
    """
    try:
        before = os.stat(path)
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        raise _refused(path, what, os_reason(error)) from None
    if not stat.S_ISREG(before.st_mode):
        raise _refused(path, what, f"is {kind_of(before.st_mode)}, not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as error:
        raise _refused(path, what, os_reason(error)) from None
    try:
        info = os.fstat(fd)
    except OSError as error:
        os.close(fd)
        raise _refused(path, what, os_reason(error)) from None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refused(path, what, f"is {kind_of(info.st_mode)}, not a regular file")
    return fd, info


def regular_file(path: Path, what: str) -> os.stat_result:
    """``path``'s status, if it is a regular file (symlinks followed); never blocks.

    Args:
        path: the file.
        what: its role, for the message (``"model file"``, ``"config.json of"``...).

    Raises:
        ModelFileError: it is missing, a directory, FIFO, device or socket, a symlink loop,
            has a name too long for the file system, or cannot be opened.
    """
    fd, info = _open_regular(path, what)
    os.close(fd)
    return info


def open_regular(path: Path, what: str) -> io.BufferedReader:
    """``path`` opened for binary reading, if it is a regular file; see :func:`regular_file`."""
    fd, _ = _open_regular(path, what)
    try:
        return open(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    """The contents of regular file ``path``, refused if longer than ``limit`` bytes.

    At most ``limit + 1`` bytes are ever read, whatever the file claims or grows to.

    Raises:
        ModelFileError: as :func:`regular_file`, or the file is over ``limit`` bytes.
    """
    fd, _ = _open_regular(path, what)
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = os.read(fd, min(_BLOCK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise _refused(path, what, os_reason(error)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise ModelFileError(
            f"{what} {shown_path(path)} is larger than layerhub's limit of {limit} bytes; "
            "refusing to read it (a damaged or hostile file?)"
        )
    return b"".join(chunks)


# -- names and versions -------------------------------------------------------------------------


def distribution_name(name: object) -> str | None:
    """The canonical form of a valid PEP 508 distribution name, or ``None``."""
    from packaging.utils import InvalidName, canonicalize_name

    if not isinstance(name, str) or len(name) > MAX_NAME:
        return None
    try:
        return str(canonicalize_name(name, validate=True))
    except InvalidName:
        return None


def version_string(version: object) -> str | None:
    """A valid PEP 440 version in its normal form, or ``None``."""
    from packaging.version import InvalidVersion, Version

    if not isinstance(version, str) or len(version) > MAX_NAME:
        return None
    try:
        return str(Version(version))
    except InvalidVersion:
        return None


def requirement(distribution: str, version: str | None) -> str:
    """One shell-quoted ``name==version`` argument; the parts must already be validated."""
    return shlex.quote(f"{distribution}=={version}" if version else distribution)


def conventional_distribution(registered_name: str) -> str | None:
    """The distribution the plugin convention implies for a registered name, or ``None``.

    A plugin's import package, registration package and distribution share one name
    (``layerhub_pam>PAM`` comes from ``layerhub-pam``).
    """
    package = registered_name.partition(">")[0]
    if not _IDENTIFIER_PATH.fullmatch(package) or "." in package:
        return None
    return distribution_name(package)
