"""Child Python processes that import nothing from where they happen to start.

A plain ``python -c`` puts the working directory first on ``sys.path``: a ``json.py``,
``keras.py``, ``numpy.py`` or ``layerhub.py`` lying there would be imported in place of the real
module. Every child layerhub starts runs ``python -I`` (no working directory or script
directory on the path, no ``PYTHON*`` variables, no user site) in a working directory of its
own; the caller's ``PYTHONPATH``, which ``-I`` would drop, is carried over as absolute paths only
(an empty or relative entry means the working directory).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

# Runs the code as the child's __main__, after the carried-over path entries.
_BOOTSTRAP: Final = (
    "import sys; sys.path[:0] = {paths!r}; "
    "exec(compile({code!r}, '<string>', 'exec'), vars(sys.modules['__main__']))"
)


def carried_paths(env: Mapping[str, str]) -> list[str]:
    """The absolute, existing-or-not entries of ``env["PYTHONPATH"]``, in order."""
    entries = env.get("PYTHONPATH", "").split(os.pathsep)
    return [entry for entry in entries if entry and os.path.isabs(entry)]


def python_command(code: str, args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``argv`` running ``code`` in an isolated interpreter, with ``args`` as ``sys.argv[1:]``."""
    bootstrap = _BOOTSTRAP.format(paths=carried_paths(env), code=code)
    return [sys.executable, "-I", "-c", bootstrap, *args]


@contextlib.contextmanager
def safe_directory(cwd: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """``cwd`` if the caller chose one, else a new empty directory removed afterwards."""
    if cwd is not None:
        yield os.fspath(cwd)
        return
    with tempfile.TemporaryDirectory(prefix="layerhub-child-") as scratch:
        yield scratch
