"""Checks on an opened model before anything is imported or built: limits and bytecode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from layerhub._private.errors import ModelFileError, UnsafeModelError
from layerhub._private.guard import config_tree
from layerhub._private.guard.untrusted import described, shown

# A config or metadata member larger than this is refused before it is read: real configs
# of models with thousands of layers are a few MiB, and a zip member can claim gigabytes. The
# limit is on content: decompressed bytes, decoded text, never the size on disk.
MAX_MEMBER_BYTES: Final = 64 << 20
# Keras rebuilds a config recursively, several frames a level; real models nest a few dozen
# levels (a model in a model in a layer ...). Deeper trees are refused rather than recursed.
MAX_CONFIG_DEPTH: Final = 512


def check_size(file: Path, what: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ModelFileError(
            f"{file}: its {what} is {size} bytes, above layerhub's limit of "
            f"{MAX_MEMBER_BYTES} bytes; refusing to read it (a damaged or hostile file?)"
        )


def decode_json(raw: object, name: str, what: str) -> Any:
    """``raw`` (UTF-8 bytes or text) parsed as JSON; one-line ``ModelFileError`` otherwise.

    Whatever a decoder hands over is accepted as ``raw``: anything but bytes or text, text
    over ``MAX_MEMBER_BYTES`` (measured decoded), bad UTF-8 and bad JSON are all refused here.
    """
    from layerhub._private.registry.records import one_line

    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, (bytes, str)):
        raise ModelFileError(f"{name}: its {what} is {described(raw)}, not JSON text")
    check_size(Path(name), what, len(raw))
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")  # pragma: no mutate (codec names ignore case)
        return json.loads(raw)
    except RecursionError:
        raise ModelFileError(f"{name}: its {what} nests too deeply to read") from None
    except ValueError as error:  # includes UnicodeDecodeError and JSONDecodeError
        raise ModelFileError(f"{name}: its {what} is not JSON: {shown(one_line(error))}") from error


def check_config(file: Path, config: Any, *, safe_mode: bool) -> None:
    """Refuse configs nested too deeply, and bytecode while ``safe_mode`` is on."""
    if config_tree.depth(config) > MAX_CONFIG_DEPTH:
        raise ModelFileError(
            f"{file}: its config nests deeper than {MAX_CONFIG_DEPTH} levels; "
            "refusing to rebuild it (a damaged or hostile file?)"
        )
    if safe_mode:
        refuse_bytecode(file, config)


def refuse_bytecode(file: Path, config: Any) -> None:
    """Raise if the config holds a Python function saved as bytecode (``safe_mode`` forbids it)."""
    for layer, keys, keras2 in config_tree.bytecode_sites(config):
        where = f"layer {shown(layer)!r}" if layer is not None else "a layer"
        what = f" in its {' and '.join(shown(k) for k in keys)}" if keys else ""
        saved = (
            "Keras 2 saved every Python function given to a Lambda layer this way, named or not"
            if keras2
            else "Keras saves Python lambdas this way"
        )
        raise UnsafeModelError(
            f"{file}: {where} holds Python bytecode{what}, which would run as code while the "
            f"model loads, so safe_mode refuses it ({saved}); if you trust the file, load it "
            "with safe_mode=False, and to avoid this in future rebuild the Lambda with a "
            "function a plugin registers and save it as .keras"
        )
