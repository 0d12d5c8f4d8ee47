"""The registry of installed layerhub plugins and the objects they provide."""

from __future__ import annotations

import builtins
import contextlib
import fnmatch
import importlib
import os
import threading
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from layerhub._private import discovery
from layerhub._private.errors import (
    AmbiguousNameError,
    BrokenPluginError,
    PluginConflictError,
    PluginNotFoundError,
)
from layerhub._private.records import LayerRecord, one_line

if TYPE_CHECKING:
    import pluggy

DISABLE_AUTOLOAD_ENV: Final = "LAYERHUB_DISABLE_AUTOLOAD"
_SERIAL_FORMAT: Final = 1


class PluginWarning(UserWarning):
    """A plugin is broken, conflicting or inconsistent; the others keep working."""


def registered_name_of(obj: Any) -> str:
    """The name Keras saves ``obj`` under (imports keras)."""
    import keras

    return str(keras.saving.get_registered_name(obj))


class Registry:
    """Installed layerhub plugins and the Keras objects they provide.

    Listing reads entry-point metadata only; a plugin is imported the first time one of its
    objects is asked for. A plugin that fails to import, or disagrees with its metadata, is
    recorded on its records and warned about once; it never stops the others.

    Args:
        records: start from these records instead of scanning installed distributions.
        autoload: scan entry points on first use. Defaults to on unless the environment variable
            ``LAYERHUB_DISABLE_AUTOLOAD`` is set to a non-empty value.
    """

    def __init__(
        self, records: Iterable[LayerRecord] | None = None, *, autoload: bool | None = None
    ) -> None:
        if autoload is None:
            autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
        self._autoload = autoload and records is None
        self._records: builtins.list[LayerRecord] | None = (
            None if self._autoload else list(records or ())
        )
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._modules: dict[str, ModuleType] = {}
        self._objects: dict[str, Any] = {}
        self._problems: dict[str, tuple[str, str]] = {}  # plugin -> (status, one-line cause)
        self._warned: set[str] = set()

    # -- metadata -------------------------------------------------------------------------------

    def _base_records(self) -> builtins.list[LayerRecord]:
        if self._records is None:
            with self._lock:
                if self._records is None:
                    self._records = discovery.scan()
                    for record in self._records:
                        if record.error is not None:
                            self._warn(record.plugin, record.error)
        return self._records

    def _current(self, record: LayerRecord) -> LayerRecord:
        if record.status != "installed":
            return record
        if record.plugin in self._problems:
            status, error = self._problems[record.plugin]
            return record._replace(status=status, error=error)  # type: ignore[arg-type]
        if record.plugin in self._modules:
            return record._replace(status="loaded")
        return record

    def list(self, pattern: str | None = None) -> builtins.list[LayerRecord]:
        """Installed objects, sorted by name, without importing keras or any plugin.

        Args:
            pattern: an ``fnmatch`` wildcard such as ``"*norm*"``, matched case-insensitively
                against the name and the registered name.
        """
        records = [self._current(r) for r in self._base_records()]
        if pattern is not None:
            wanted = pattern.lower()
            records = [
                r
                for r in records
                if fnmatch.fnmatchcase(r.name.lower(), wanted)
                or fnmatch.fnmatchcase(r.registered_name.lower(), wanted)
            ]
        return sorted(records, key=lambda r: (r.name.lower(), r.registered_name))

    def plugin_for(self, registered_name: str) -> builtins.list[LayerRecord]:
        """The records declaring ``registered_name`` (more than one means a conflict)."""
        return [
            self._current(r) for r in self._base_records() if r.registered_name == registered_name
        ]

    def refresh(self) -> None:
        """Forget the scanned metadata, so that newly installed plugins are seen."""
        with self._lock:
            if self._autoload:
                self._records = None

    def to_dict(self) -> dict[str, Any]:
        """The records as plain JSON-compatible data."""
        return {"format": _SERIAL_FORMAT, "records": [r.to_dict() for r in self.list()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Registry:
        """A registry holding exactly the records ``to_dict`` wrote; it scans nothing."""
        if data.get("format") != _SERIAL_FORMAT:
            raise ValueError(f"unsupported registry format: {data.get('format')!r}")
        return cls([LayerRecord.from_dict(r) for r in data["records"]])

    # -- loading --------------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy plugin manager holding every plugin loaded so far."""
        if self._pm is None:
            with self._lock:
                if self._pm is None:
                    import pluggy

                    from layerhub._private import hookspecs

                    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
                    pm.add_hookspecs(hookspecs)
                    self._pm = pm
        return self._pm

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, for calling a hook on every loaded plugin."""
        return self.plugin_manager.hook

    def _warn(self, plugin: str, message: str) -> None:
        if plugin not in self._warned:
            self._warned.add(plugin)
            warnings.warn(f"layerhub plugin {plugin!r}: {message}", PluginWarning, stacklevel=3)

    def _fail(self, plugin: str, status: str, message: str) -> None:
        self._problems[plugin] = (status, message)
        self._warn(plugin, message)

    def load_plugin(self, plugin: str) -> ModuleType:
        """Import one plugin by its import package name and check it against its metadata.

        Raises:
            PluginNotFoundError: no installed distribution declares that plugin.
            PluginConflictError: more than one distribution declares it.
            BrokenPluginError: it failed to import or register.
        """
        with self._lock:
            if plugin in self._modules:
                return self._modules[plugin]
            records = [r for r in self._base_records() if r.plugin == plugin]
            if not records:
                raise PluginNotFoundError(f"no installed layerhub plugin is named {plugin!r}")
            first = self._current(records[0])
            if first.status == "conflict":
                raise PluginConflictError(f"cannot load plugin {plugin!r}: {first.error}")
            if first.status == "broken":
                raise BrokenPluginError(
                    f"plugin {plugin!r} from {first.distribution} is broken: {first.error}"
                )
            try:
                module = importlib.import_module(first.module)
                self.plugin_manager.register(module, name=plugin)
            except Exception as error:  # a plugin may raise anything on import
                cause = one_line(error)
                self._fail(plugin, "broken", cause)
                raise BrokenPluginError(
                    f"plugin {plugin!r} from {first.distribution} failed to load: {cause}"
                ) from error
            self._modules[plugin] = module
            self._check(plugin, records)
            return module

    def _provided(self, plugin: str, hook_name: str) -> builtins.list[Any]:
        caller = getattr(self.plugin_manager.hook, hook_name)
        return [impl.function() for impl in caller.get_hookimpls() if impl.plugin_name == plugin]

    def _check(self, plugin: str, records: builtins.list[LayerRecord]) -> None:
        """Map the plugin's hook objects by registered name; record any disagreement."""
        import keras

        declared = {r.registered_name for r in records}
        problems: builtins.list[str] = []
        provided: set[str] = set()
        for objects in self._provided(plugin, "layerhub_layers"):
            for obj in objects or ():
                name = registered_name_of(obj)
                if keras.saving.get_registered_object(name) is not obj:
                    problems.append(f"{name} is not registered with keras.saving")
                    continue
                provided.add(name)
                self._objects[name] = obj
        if missing := sorted(declared - provided):
            problems.append(
                f"metadata declares {', '.join(missing)} but the hooks do not provide it"
            )
        if extra := sorted(provided - declared):
            problems.append(f"hooks provide {', '.join(extra)} missing from the metadata")
        declared_names = {r.name for r in records}
        for legacy in self._provided(plugin, "layerhub_legacy_names"):
            if undeclared := sorted(set(legacy or {}) - declared_names):
                problems.append(f"legacy names {', '.join(undeclared)} missing from the metadata")
        if problems:
            self._fail(plugin, "mismatch", "; ".join(problems))

    def load_all(self) -> None:
        """Import every installed plugin so that plain ``keras.saving.load_model`` works.

        Idempotent. Broken and conflicting plugins are recorded and warned about, not raised.
        """
        for plugin in sorted({r.plugin for r in self._base_records()}):
            if plugin in self._modules or plugin in self._problems:
                continue
            # Failures are already on the records and warned about; the others go on.
            with contextlib.suppress(BrokenPluginError, PluginConflictError):
                self.load_plugin(plugin)

    def register(
        self, module: ModuleType, *, plugin: str | None = None
    ) -> builtins.list[LayerRecord]:
        """Register a plugin module by hand (tests, notebooks, ``LAYERHUB_DISABLE_AUTOLOAD``).

        Its records are built from what its ``layerhub_layers`` hook returns.
        """
        plugin = plugin or module.__name__.partition(".")[0]
        with self._lock:
            base = self._base_records()
            if any(r.plugin == plugin for r in base):
                raise PluginConflictError(f"plugin {plugin!r} is already registered")
            self.plugin_manager.register(module, name=plugin)
            records = [
                LayerRecord(
                    name=registered_name_of(obj).partition(">")[2],
                    registered_name=registered_name_of(obj),
                    plugin=plugin,
                    module=module.__name__,
                    distribution="(registered by hand)",
                    version="",
                )
                for objects in self._provided(plugin, "layerhub_layers")
                for obj in objects or ()
            ]
            base.extend(records)
            self._modules[plugin] = module
            self._check(plugin, records)
            return [self._current(r) for r in records]

    # -- lookup ---------------------------------------------------------------------------------

    def _matches(self, name: str) -> builtins.list[LayerRecord]:
        return [r for r in self._base_records() if name in (r.name, r.registered_name)]

    def get(self, name: str) -> Any:
        """The object called ``name`` (class name or registered name), importing only its plugin.

        Raises:
            PluginNotFoundError: nothing installed provides it.
            AmbiguousNameError: a class name that several plugins provide.
            BrokenPluginError: its plugin failed to load or does not provide it.
        """
        matches = self._matches(name)
        if not matches:
            import difflib

            known = sorted({r.name for r in self._base_records()})
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise PluginNotFoundError(f"no installed layerhub plugin provides {name!r}{hint}")
        registered = sorted({r.registered_name for r in matches})
        if len(registered) > 1:
            raise AmbiguousNameError(name, registered)
        record = matches[0]
        self.load_plugin(record.plugin)
        try:
            return self._objects[record.registered_name]
        except KeyError:
            cause = self._problems.get(record.plugin, ("", "hooks do not provide it"))[1]
            raise BrokenPluginError(
                f"plugin {record.plugin!r} does not provide {record.registered_name}: {cause}"
            ) from None

    def load_for(self, registered_names: Iterable[str]) -> dict[str, Any]:
        """Load exactly the plugins providing these registered names; return what they provide.

        Names no installed plugin declares are left out of the answer (the caller decides).
        """
        found: dict[str, Any] = {}
        for name in sorted(set(registered_names)):
            if self._matches(name):
                found[name] = self.get(name)
        return found

    def legacy_objects(self, names: Iterable[str]) -> dict[str, Any]:
        """Resolve bare Keras 2 class names through the plugins declaring them.

        Only plugins whose metadata declares one of ``names`` are imported. The answer is meant
        as ``custom_objects`` for one call; it never touches Keras' global registry.
        """
        wanted = set(names)
        plugins = sorted({r.plugin for r in self._base_records() if r.name in wanted})
        found: dict[str, tuple[str, Any]] = {}
        for plugin in plugins:
            self.load_plugin(plugin)
            for mapping in self._provided(plugin, "layerhub_legacy_names"):
                for legacy, obj in (mapping or {}).items():
                    if legacy not in wanted:
                        continue
                    if legacy in found and found[legacy][1] is not obj:
                        raise AmbiguousNameError(
                            legacy, [found[legacy][0], registered_name_of(obj)]
                        )
                    found[legacy] = (registered_name_of(obj), obj)
        return {legacy: obj for legacy, (_, obj) in found.items()}

    def custom_objects(self) -> dict[str, Any]:
        """Every installed object under its bare name, for code that calls Keras directly.

        ``keras.saving.load_model(path, custom_objects=registry.custom_objects())`` loads old
        files that saved bare class names. The global Keras registry is not touched.
        """
        self.load_all()
        names = {r.name for r in self._base_records() if r.plugin in self._modules}
        mapping = self.legacy_objects(names)
        for record in self._base_records():
            obj = self._objects.get(record.registered_name)
            if obj is None:
                continue
            if record.name in mapping and mapping[record.name] is not obj:
                raise AmbiguousNameError(
                    record.name, [registered_name_of(mapping[record.name]), record.registered_name]
                )
            mapping[record.name] = obj
        return mapping

    def problems(self) -> builtins.list[LayerRecord]:
        """Records that are broken, conflicting or mismatched (after ``load_all`` for all)."""
        return [r for r in self.list() if r.status not in ("installed", "loaded")]


registry: Final = Registry()
