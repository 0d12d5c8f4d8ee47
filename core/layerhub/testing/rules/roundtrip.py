"""Rule 2: saved with layerhub, loaded in a fresh interpreter, the model gives the same outputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras

from layerhub.testing._fresh import RoundTripError, assert_roundtrip
from layerhub.testing.rules._common import Broken, Case, broken_by, doing, model
from layerhub.testing.rules.config import not_plain, plain_fix


def check(case: Case) -> None:
    __tracebackhide__ = True
    with doing("building a model of the layer on keras.Input"):
        built = model(case, case.new_layer())
    with tempfile.TemporaryDirectory(prefix="layerhub-check-") as scratch:
        directory = case.tmp_path / case.cls.__name__ if case.tmp_path else Path(scratch)
        try:
            assert_roundtrip(
                built, case.arg(case.inputs), directory, atol=case.atol, rtol=case.rtol
            )
        except RoundTripError as error:
            raise _explained(case, error) from None
        except Exception as error:  # saving runs the layer's own get_config and friends
            raise broken_by(error, "saving with layerhub.save_model") from error


def _explained(case: Case, error: RoundTripError) -> Broken:
    """The round trip's report, or the cause another rule names better."""
    if "fresh interpreter failed" not in error.seen:
        return Broken(error.seen, error.fix)
    name = str(keras.saving.get_registered_name(case.cls))
    if "MissingPluginError" in error.seen and not case.registry.plugin_for(name):
        package = case.cls.__module__.partition(".")[0]
        if any(record.plugin == package for record in case.registry.list()):
            return Broken(
                f"the fresh interpreter cannot find {name!r}: the plugin {package} is installed, "
                f"but its installed entry points do not list {case.cls.__name__} (they were "
                "written when the plugin was installed, before this layer was added)",
                "reinstall the plugin so that its entry points are written again: "
                "pip install -e <plugin directory> (see rule 7)",
                cause=7,
            )
        return Broken(
            f"the fresh interpreter cannot find {name!r}: no installed plugin declares it",
            "the layer must come from an installed plugin (see rule 7): list it in the plugin's "
            'pyproject.toml under [project.entry-points."layerhub.layers"], return it from '
            "the layerhub_layers hook, and reinstall the plugin (pip install -e .)",
            cause=7,
        )
    if (odd := _config_not_plain(case)) is not None:
        # Keras saves the value, then cannot hand it back to __init__: the child's error blames
        # deserialisation, and registering the class (the usual fix) changes nothing.
        key, kind = odd
        return Broken(
            f"{error.seen}; the cause is the config, not the registration: get_config() holds a "
            f"{kind} under {key}, which the saved file cannot give back to __init__ (see rule 1)",
            f"{plain_fix(key)} (see rule 1); registering the class does not fix this",
            cause=1,
        )
    if "bytecode" in error.seen or "__lambda__" in error.seen:
        return Broken(
            f"{error.seen.partition(': ')[0]}: the config holds a Python lambda (see rule 1)",
            "use a built-in or registered initializer instead of a lambda (see rule 1)",
            cause=1,
        )
    return Broken(error.seen, error.fix)


def _config_not_plain(case: Case) -> tuple[str, str] | None:
    """Rule 1's finding of a config value JSON cannot hold, if the layer's config has one."""
    try:
        config = case.new_layer().get_config()
    except Exception:  # rule 1 reports a get_config() that raises
        return None
    return not_plain(config)
