"""Shared pieces of the hardening tests: small plugin models, archive surgery, error checks.

Not a test module: ``tests/conftest.py`` puts this directory on ``sys.path``, so the tests (and
the fresh interpreters they start, with the directory on their path) ``import _hardening``.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import layerhub

# The longest message a LayerHubError may have (README, "Security model").
MAX_MESSAGE = 1000
# Control characters (C0, DEL, C1) and Unicode line/paragraph separators: none may reach a message.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]")

# Importable, but no installed plugin declares it: a model file naming it must never import it.
EVIL_PACKAGE = "evil_mod"
EVIL_INIT = """
import os, pathlib
os.environ["LAYERHUB_EVIL_IMPORTED"] = "1"
pathlib.Path(__file__).with_name("IMPORTED").write_text("evil_mod was imported")

class Boom:
    pass
"""


def write_evil_package(root: Path) -> Path:
    """``root/evil_mod/__init__.py``; it leaves ``root/evil_mod/IMPORTED`` behind when imported."""
    package = root / EVIL_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(EVIL_INIT)
    return package / "IMPORTED"


def assert_evil_not_imported(marker: Path) -> None:
    import os

    assert EVIL_PACKAGE not in sys.modules, "a module named in a model file was imported"
    assert not marker.exists(), "a module named in a model file was imported"
    assert "LAYERHUB_EVIL_IMPORTED" not in os.environ, "a module named in a model file was imported"


def assert_one_line(error: BaseException) -> str:
    """``error`` is a LayerHubError whose message is one bounded line; returns the message."""
    assert isinstance(error, layerhub.LayerHubError), (
        f"not a LayerHubError: {type(error).__module__}.{type(error).__name__}: "
        f"{str(error)[:300]!r}"
    )
    message = str(error)
    assert message, f"{type(error).__name__} with an empty message"
    assert len(message) <= MAX_MESSAGE, f"message of {len(message)} characters: {message[:200]!r}"
    bad = _CONTROL.search(message)
    assert bad is None, f"control character {bad.group()!r} in message: {message[:300]!r}"
    return message


def scale_model() -> Any:
    import keras
    from layerhub_scale import Scale

    inputs = keras.Input((3, 4))
    hidden = Scale(gamma_initializer="random_normal", beta_initializer="random_normal")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


def pam_model() -> Any:
    import keras
    from layerhub_pam import PAM

    inputs = keras.Input((4, 4, 8))
    hidden = PAM(reduction=2, gamma_initializer="ones")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(hidden))


# The manifest lives in the archive's zip comment; files saved by layerhub 0.1 keep it in
# metadata.json under "layerhub". A file may carry either, and both are untrusted.
COMMENT_PREFIX = b"layerhub-manifest:"
MANIFEST_PLACES = ("comment", "metadata")


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def read_comment(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.comment


def write_members(
    path: Path, members: dict[str, bytes] | list[tuple[str, bytes]], comment: bytes = b""
) -> None:
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
        zf.comment = comment[:65535]


def manifest_of(members: dict[str, bytes], comment: bytes) -> Any:
    """The manifest a saved file carries, wherever it is."""
    if comment.startswith(COMMENT_PREFIX):
        return json.loads(comment[len(COMMENT_PREFIX) :])
    return json.loads(members["metadata.json"]).get("layerhub")


def with_manifest(
    members: dict[str, bytes], manifest: Any, place: str
) -> tuple[dict[str, bytes], bytes]:
    """``members`` and a zip comment that carry ``manifest`` in ``place`` (and nowhere else)."""
    metadata = json.loads(members["metadata.json"])
    metadata.pop("layerhub", None)
    comment = b""
    if place == "metadata":
        metadata["layerhub"] = manifest
    else:
        comment = COMMENT_PREFIX + dumps(manifest)
    return {**members, "metadata.json": dumps(metadata)}, comment


def dumps(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except ValueError:  # an int beyond Python's str conversion limit
        return json.dumps(value, default=str).encode()


def plugin(
    fake_dist: Callable[..., Path], name: str, source: str, *objects: str, **kwargs: object
) -> Path:
    """An installed fake plugin ``name`` whose package is ``source``, offering ``objects``."""
    return fake_dist(
        name.replace("_", "-"),
        plugin=name,
        objects={o: f"{name}:{o}" for o in objects},
        modules={f"{name}/__init__.py": source},
        **kwargs,
    )


# Kinds of hostile input, shared by the matrix in test_hardening_kinds --------------------------

# Text a terminal would act on, or cannot encode: each must reach no sink raw.
HOSTILE_TEXT = {
    "esc": "\x1b[2J\x1b[31m",
    "bel": "\x07",
    "newline": "\nlayerhub: ok",
    "rlo": "\u202egnp.exe",
    "nul": "\x00",
    "surrogate": "\ud800",
}
# How shown() writes each of them.
HOSTILE_SHOWN = {
    "esc": "\\x1b[2J\\x1b[31m",
    "bel": "\\x07",
    "newline": "\\nlayerhub: ok",
    "rlo": "\\u202egnp.exe",
    "nul": "\\x00",
    "surrogate": "\\ud800",
}
_RAW = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def raw_control(text: str) -> str | None:
    """The first character of ``text`` a terminal would act on (newlines and tabs aside)."""
    found = _RAW.search(text)
    return None if found is None else found.group()


# Run beside a load that may block on a FIFO: after the timeout it opens the FIFOs' writing ends
# and closes them (a blocked reader then sees end of file), for a while, then exits.
_WATCHDOG = """
import os, sys, time
seconds, fifos = float(sys.argv[1]), sys.argv[2:]
time.sleep(seconds)
end = time.monotonic() + 30
while time.monotonic() < end:
    for fifo in fifos:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    time.sleep(0.05)
"""


def outcome_within(call: Callable[[], Any], seconds: float, fifos: list[Path]) -> Any:
    """``call()``'s result or exception; ``AssertionError`` if it took ``seconds`` or more.

    A load that blocks on a FIFO fails the test instead of hanging the suite. The unblocking
    comes from another process: a thread could not do it, since h5py holds the GIL while
    HDF5 waits in ``open`` (the whole interpreter stops).
    """
    import subprocess
    import time

    watchdog = (
        subprocess.Popen(
            [sys.executable, "-I", "-c", _WATCHDOG, str(seconds), *map(str, fifos)],
            cwd="/",
        )
        if fifos
        else None
    )
    started = time.monotonic()
    try:
        outcome: Any = call()
    except BaseException as error:
        outcome = error
    finally:
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
    elapsed = time.monotonic() - started
    if elapsed >= seconds:
        raise AssertionError(
            f"blocked for {elapsed:.0f} s (a FIFO opened or read?); then: {outcome!r:.300}"
        )
    return outcome


KERAS2_WRITER = """
import sys
import tf_keras as keras

out = sys.argv[1]
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
model.save(out + "/model.h5")
model.save(out + "/model_savedmodel", save_format="tf")
"""


def keras2_models(root: Path) -> dict[str, Path] | None:
    """A one-Dense Keras 2 model saved by tf-keras as ``.h5`` and as a SavedModel directory
    (compiled with SGD and momentum); ``None`` when tf-keras is not installed."""
    import importlib.util

    from layerhub.testing import run_in_fresh_interpreter

    if importlib.util.find_spec("tf_keras") is None:
        return None
    run_in_fresh_interpreter(
        KERAS2_WRITER, str(root), env={"TF_USE_LEGACY_KERAS": "1"}, timeout=300
    )
    return {"h5": root / "model.h5", "savedmodel": root / "model_savedmodel"}
