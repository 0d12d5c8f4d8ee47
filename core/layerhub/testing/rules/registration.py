"""Rule 7: the class is registered under its plugin's package; hooks and metadata agree."""

from __future__ import annotations

import keras

from layerhub._private.errors import LayerHubError
from layerhub.testing.rules._common import Broken, Case


def check(case: Case) -> None:
    __tracebackhide__ = True
    cls = case.cls
    package = cls.__module__.partition(".")[0]
    wanted = f"{package}>{cls.__name__}"
    name = str(keras.saving.get_registered_name(cls))
    if name != wanted or keras.saving.get_registered_object(name) is not cls:
        raise Broken(
            f"it is registered as {name!r}, not {wanted!r}",
            f"decorate the class with @keras.saving.register_keras_serializable(package="
            f"{package!r}), so saved files name the plugin that provides it",
        )
    records = case.registry.plugin_for(name)
    if not records:
        entry = (
            f'[project.entry-points."layerhub.layers"] {cls.__name__} = "{package}:{cls.__name__}"'
        )
        if any(record.plugin == package for record in case.registry.list()):
            raise Broken(
                f"the plugin {package} is installed, but its installed entry points do not "
                f"declare {name!r}: they were written when it was installed, before this layer "
                "was added",
                f"check pyproject.toml has {entry}, then reinstall the plugin (pip install -e "
                "<plugin directory>): entry points change only on (re)install",
            )
        raise Broken(
            f"no installed plugin declares {name!r}",
            f"list it in the plugin's pyproject.toml ({entry}), return it from the "
            "layerhub_layers hook and reinstall the plugin (pip install -e .)",
        )
    try:
        case.registry.load_plugin(records[0].plugin)
        provided = case.registry.get(name)
    except LayerHubError as error:
        raise Broken(f"its plugin does not load: {error}") from error
    record = case.registry.plugin_for(name)[0]
    if record.status != "loaded":
        raise Broken(f"its plugin is {record.status}: {record.error}")
    if provided is not cls:
        raise Broken(
            f"the plugin's hooks provide a different object under {name!r} "
            f"({provided.__module__}.{provided.__qualname__})",
            "return the class itself from the layerhub_layers hook, imported from its module",
        )
