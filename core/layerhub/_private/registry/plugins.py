"""The registry of installed layerhub plugins and the objects they provide."""

from __future__ import annotations

import builtins
import contextlib
import fnmatch
import importlib
import math
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from layerhub._private.errors import (
    AmbiguousNameError,
    BrokenPluginError,
    PluginConflictError,
    PluginNotFoundError,
)
from layerhub._private.registry import discovery
from layerhub._private.registry.records import LayerRecord, one_line

if TYPE_CHECKING:
    import pluggy

DISABLE_AUTOLOAD_ENV: Final = "LAYERHUB_DISABLE_AUTOLOAD"
IMPORT_TIMEOUT_ENV: Final = "LAYERHUB_IMPORT_TIMEOUT"
DEFAULT_IMPORT_TIMEOUT: Final = 60.0
BY_HAND: Final = "(registered by hand)"
"""Display text for the distribution of a plugin registered by hand (the record holds None)."""
_SERIAL_FORMAT: Final = 1
_HOOK_ERRORS: Final = (Exception, SystemExit)


class PluginWarning(UserWarning):
    """A plugin is broken, conflicting or inconsistent; the others keep working."""


def registered_name_of(obj: Any) -> str:
    """The name Keras saves ``obj`` under (imports keras)."""
    import keras

    return str(keras.saving.get_registered_name(obj))


def import_timeout() -> float:
    """Seconds to wait for one plugin's import: ``LAYERHUB_IMPORT_TIMEOUT``, else 60."""
    try:
        value = float(os.environ.get(IMPORT_TIMEOUT_ENV, ""))
    except ValueError:
        return DEFAULT_IMPORT_TIMEOUT
    return value if value > 0 and math.isfinite(value) else DEFAULT_IMPORT_TIMEOUT


def origin(record: LayerRecord) -> str:
    """``distribution version`` for display, or ``(registered by hand)``."""
    if record.distribution is None:
        return BY_HAND
    return f"{record.distribution} {record.version or ''}".rstrip()


class _ImportFailed(Exception):
    """A plugin's import failed; the message is the one-line cause."""


_KERAS_LOCK: Final = threading.Lock()
_keras_ready: builtins.list[ModuleType] = []


def import_keras() -> ModuleType:
    """Keras, imported once under a lock, so no thread ever sees it half imported.

    Two threads making their first load at once would otherwise both enter Keras' import, and
    the second can be handed the partially initialised module ("partially initialized module
    'keras' has no attribute ...").
    """
    # Checked against sys.modules each time: whoever replaced or removed Keras there (tests
    # simulating a missing Keras) gets what an import would give now.
    if _keras_ready and sys.modules.get("keras") is _keras_ready[0]:
        return _keras_ready[0]
    with _KERAS_LOCK:
        import keras

        module: ModuleType = keras
        _keras_ready[:] = [module]
    return module


def _import_keras() -> None:
    # Before the plugin's own import and outside its time limit: Keras' first import takes
    # seconds, and when it fails (no backend) the cause is the environment, not the plugin.
    try:
        import_keras()
    except Exception as error:
        from layerhub._private.registry.backend import missing_backend

        cause = missing_backend() or f"cannot import keras: {one_line(error)}"
        raise _ImportFailed(cause) from None


# The plugins each thread is importing (a plugin's import runs in a thread of its own, which
# inherits its parent's): a plugin asking for itself, or for a plugin waiting on it, is a cycle.
_IMPORTING: Final = threading.local()


def _importing() -> frozenset[tuple[int, str]]:
    chain: frozenset[tuple[int, str]] = getattr(_IMPORTING, "chain", frozenset())
    return chain


@contextlib.contextmanager
def _inside(chain: frozenset[tuple[int, str]]) -> Iterator[None]:
    saved = _importing()
    _IMPORTING.chain = chain
    try:
        yield
    finally:
        _IMPORTING.chain = saved


def _registrations() -> tuple[dict[str, Any], dict[Any, str]]:
    """Keras' global registry: registered name -> object, and object -> registered name."""
    from keras.src.saving import object_registration

    return object_registration.GLOBAL_CUSTOM_OBJECTS, object_registration.GLOBAL_CUSTOM_NAMES


def _import_bounded(
    name: str, timeout: float, chain: frozenset[tuple[int, str]] = frozenset()
) -> ModuleType:
    """Import ``name`` in a daemon thread and wait at most ``timeout`` seconds for it.

    Anything the import raises, ``SystemExit`` and ``KeyboardInterrupt`` included, becomes an
    ``_ImportFailed``: a plugin ending the process or interrupting on import is a broken plugin.
    A real Ctrl-C is not swallowed: signals are delivered to the main thread, which raises it
    from ``join`` while the import runs in the worker. A hung import is abandoned (the daemon
    thread cannot be killed, and ends with the interpreter).
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with _inside(chain):
                outcome["module"] = importlib.import_module(name)
        except BaseException as error:  # the plugin's import may raise anything at all
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"layerhub import {name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _ImportFailed(f"did not finish importing within {timeout:g} s")
    error = outcome.get("error")
    if isinstance(error, Exception):
        raise _ImportFailed(one_line(error)) from error
    if error is not None:
        detail = one_line(error).partition(": ")[2]
        raise _ImportFailed(
            f"raised {type(error).__name__} while importing" + (f": {detail}" if detail else "")
        )
    module: ModuleType = outcome["module"]
    return module


def _withdraw(foreign: dict[str, Any], before: dict[str, Any]) -> None:
    """Take these registrations out of Keras' registry; put back what they replaced."""
    if not foreign:
        return
    objects, names = _registrations()
    for name, obj in foreign.items():
        if objects.get(name) is obj:
            if name in before:
                objects[name] = before[name]
            else:
                del objects[name]
        with contextlib.suppress(TypeError):  # unhashable: it cannot be in the table
            if names.get(obj) == name:
                del names[obj]


def _describe(value: Any) -> str:
    import reprlib

    return f"{reprlib.repr(value)} ({type(value).__name__})"


class Registry:
    """Installed layerhub plugins and the Keras objects they provide.

    Listing reads entry-point metadata only; a plugin is imported the first time one of its
    objects is asked for. A plugin that fails to import, or disagrees with its metadata, is
    recorded on its records and warned about once; it never stops the others. A plugin's import
    is waited for at most ``LAYERHUB_IMPORT_TIMEOUT`` seconds (default 60); one that takes longer
    is recorded broken and left behind.

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
        self._legacy: dict[str, dict[str, Any]] = {}  # plugin -> checked Keras 2 names
        self._by_hand: dict[str, builtins.list[LayerRecord]] = {}
        # Modules a failed import left in sys.modules; dropped by refresh() so it is retried.
        self._stale: dict[str, set[str]] = {}
        # plugin -> set once its import (in progress in some thread) has ended, either way.
        self._pending: dict[str, threading.Event] = {}

    # -- metadata -------------------------------------------------------------------------------

    def _base_records(self) -> builtins.list[LayerRecord]:
        if self._records is None:
            with self._lock:
                if self._records is None:
                    scanned = discovery.scan()
                    for record in scanned:
                        if record.error is not None:
                            self._warn(record.plugin, record.error)
                    self._records = scanned + [r for rs in self._by_hand.values() for r in rs]
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
        """Scan installed distributions again, so that installs, upgrades and fixes are seen.

        Everything learnt about the scanned plugins is forgotten: their records, statuses,
        problems and warnings, so a plugin fixed by a new install loads on next use. Modules
        Python has already imported stay imported (a changed plugin that had loaded needs a new
        process); what a failed import left in ``sys.modules`` is dropped so the import is tried
        afresh. Plugins registered by hand are kept as they are. A registry made from given
        records (``from_dict``, or autoload off) has nothing to scan and is left unchanged.
        """
        with self._lock:
            if not self._autoload:
                return
            importlib.invalidate_caches()
            rescanned = {r.plugin for r in self._records or ()} - set(self._by_hand)
            for plugin in rescanned:
                self._problems.pop(plugin, None)
                self._warned.discard(plugin)
                self._legacy.pop(plugin, None)
                self._modules.pop(plugin, None)
                if self._pm is not None and self._pm.get_plugin(plugin) is not None:
                    self._pm.unregister(name=plugin)
                for name in self._stale.pop(plugin, ()):
                    sys.modules.pop(name, None)
            self._objects = {
                name: obj
                for name, obj in self._objects.items()
                if name.partition(">")[0] not in rescanned
            }
            self._records = None

    def to_dict(self) -> dict[str, Any]:
        """The records as plain JSON-compatible data: what metadata says, never runtime state.

        Each record is written as discovery found it, so its status is one a registry built by
        ``from_dict`` can claim without importing anything: ``installed``, ``conflict`` (two
        distributions claim its plugin) or ``broken`` with the metadata's inconsistency as
        ``error``. What this process did is left out: ``loaded``, ``mismatch`` and failed imports
        are written as ``installed`` without an error. Plugins registered by hand are included
        with ``distribution`` and ``version`` null.
        """
        records = sorted(self._base_records(), key=lambda r: (r.name.lower(), r.registered_name))
        return {"format": _SERIAL_FORMAT, "records": [r.to_dict() for r in records]}

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

                    from layerhub._private.registry import hookspecs

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

        The import runs in a daemon thread, waited for at most ``LAYERHUB_IMPORT_TIMEOUT``
        seconds (default 60). Whatever the import raises, ``SystemExit`` and a
        ``KeyboardInterrupt`` raised by the plugin's code included, marks the plugin broken. (A
        plugin therefore cannot install signal handlers while it is imported: only the main
        thread may.) The registry's lock is never held while plugin code runs, so a plugin may
        use the registry while it is imported; each plugin is imported once, other threads
        asking for it meanwhile wait for that import.

        Raises:
            PluginNotFoundError: no installed distribution declares that plugin.
            PluginConflictError: more than one distribution declares it.
            BrokenPluginError: it failed to import or register, or did not import in time, or
                it was asked for by its own import (directly or through another plugin).
        """
        while True:
            with self._lock:
                if plugin in self._modules:
                    return self._modules[plugin]
                records = [r for r in self._base_records() if r.plugin == plugin]
                if not records:
                    raise PluginNotFoundError(f"no installed layerhub plugin is named {plugin!r}")
                first = self._current(records[0])
                source = origin(first)
                if first.status == "conflict":
                    raise PluginConflictError(f"cannot load plugin {plugin!r}: {first.error}")
                if first.status == "broken":
                    raise BrokenPluginError(
                        f"plugin {plugin!r} from {source} is broken: {first.error}"
                    )
                pending = self._pending.get(plugin)
                if pending is None:
                    done = self._pending[plugin] = threading.Event()
                    break
            if (id(self), plugin) in _importing():
                raise BrokenPluginError(
                    f"plugin {plugin!r} from {source} was asked for while it is being imported "
                    "(by its own import, or by a plugin it imports)"
                )
            pending.wait()
        try:
            return self._import(plugin, first, records)
        finally:
            with self._lock:
                self._pending.pop(plugin, None)
            done.set()

    def _import(
        self, plugin: str, first: LayerRecord, records: builtins.list[LayerRecord]
    ) -> ModuleType:
        """Import, register and check one plugin; only the bookkeeping holds the lock."""
        before = set(sys.modules.copy())
        chain = _importing() | {(id(self), plugin)}
        try:
            _import_keras()
            registered = dict(_registrations()[0])
            module = _import_bounded(first.module, import_timeout(), chain)
            with self._lock:
                self.plugin_manager.register(module, name=plugin)
        except Exception as error:  # pluggy's register may raise anything too
            cause = str(error) if isinstance(error, _ImportFailed) else one_line(error)
            packages = (plugin, first.module)
            with self._lock:
                self._stale[plugin] = {
                    name
                    for name in set(sys.modules.copy()) - before
                    if any(name == p or name.startswith(p + ".") for p in packages)
                }
                self._fail(plugin, "broken", cause)
            raise BrokenPluginError(
                f"plugin {plugin!r} from {origin(first)} failed to load: {cause}"
            ) from error
        # The hooks are plugin code too: they run outside the lock, inside the import chain.
        with _inside(chain):
            self._check(plugin, records, registered_before=registered, module=first.module)
        with self._lock:
            self._modules[plugin] = module
        return module

    def _hook_results(self, plugin: str, hook_name: str) -> tuple[builtins.list[Any], set[str]]:
        """What each of the plugin's implementations of a hook returns, and what they raised."""
        caller = getattr(self.plugin_manager.hook, hook_name)
        results: builtins.list[Any] = []
        raised: set[str] = set()
        for impl in caller.get_hookimpls():
            if impl.plugin_name != plugin:
                continue
            try:
                results.append(impl.function())
            except _HOOK_ERRORS as error:
                raised.add(f"its {hook_name} hook raised {one_line(error)}")
        return results, raised

    def _check(
        self,
        plugin: str,
        records: builtins.list[LayerRecord],
        *,
        registered_before: dict[str, Any] | None = None,
        module: str | None = None,
    ) -> None:
        """Map the plugin's hook objects by registered name; record any disagreement.

        Only objects registered with Keras under the plugin's own package are served; a hook
        that raises makes the plugin ``broken``, anything else wrong makes it ``mismatch``.
        Registrations outside the plugin's package (its hooks' objects, and what its import
        added to Keras' registry from its own modules) are withdrawn, so that Keras resolves
        those names as it did before the plugin was imported.
        """
        import keras

        declared = {r.registered_name for r in records}
        problems: builtins.list[str] = []
        provided: dict[str, Any] = {}
        foreign: dict[str, Any] = {}
        results, raised = self._hook_results(plugin, "layerhub_layers")
        for objects in results:
            if not isinstance(objects, (builtins.list, tuple)):
                returned = _describe(objects)
                problems.append(f"its layerhub_layers hook returned {returned}, not a list")
                continue
            for obj in objects:
                try:
                    name = registered_name_of(obj)
                except Exception:  # unhashable, or without a __name__: not a Keras object
                    problems.append(f"its layerhub_layers hook returned {_describe(obj)}")
                    continue
                if keras.saving.get_registered_object(name) is not obj:
                    problems.append(f"{name} is not registered with keras.saving")
                elif name.partition(">")[0] != plugin:
                    problems.append(f"{name} is registered outside the plugin's package {plugin!r}")
                    foreign[name] = obj
                else:
                    provided[name] = obj
        if registered_before is not None:
            packages = {plugin, (module or plugin).partition(".")[0]}
            for name, obj in dict(_registrations()[0]).items():
                owner = str(getattr(obj, "__module__", "") or "").partition(".")[0]
                if registered_before.get(name) is obj or owner not in packages:
                    continue
                if name.partition(">")[0] != plugin and name not in foreign:
                    problems.append(f"{name} is registered outside the plugin's package {plugin!r}")
                    foreign[name] = obj
        _withdraw(foreign, registered_before or {})
        with self._lock:
            self._objects.update(provided)
        if missing := sorted(declared - set(provided)):
            problems.append(
                f"metadata declares {', '.join(missing)} but the hooks do not provide it"
            )
        if extra := sorted(set(provided) - declared):
            problems.append(f"hooks provide {', '.join(extra)} missing from the metadata")
        legacy_problems, legacy_raised = self._check_legacy(plugin, records, provided)
        problems += legacy_problems
        raised |= legacy_raised
        if raised:
            self._fail(plugin, "broken", "; ".join(sorted(raised) + problems))
        elif problems:
            self._fail(plugin, "mismatch", "; ".join(problems))

    def _check_legacy(
        self, plugin: str, records: builtins.list[LayerRecord], provided: dict[str, Any]
    ) -> tuple[builtins.list[str], set[str]]:
        """Keep the plugin's Keras 2 names that are declared and map to what it provides."""
        declared_names = {r.name for r in records}
        problems: builtins.list[str] = []
        undeclared: set[str] = set()
        checked: dict[str, Any] = {}
        results, raised = self._hook_results(plugin, "layerhub_legacy_names")
        for mapping in results:
            if not isinstance(mapping, dict):
                problems.append(
                    f"its layerhub_legacy_names hook returned {_describe(mapping)}, not a dict"
                )
                continue
            for legacy, obj in mapping.items():
                if legacy not in declared_names:
                    undeclared.add(str(legacy))
                elif not any(obj is mine for mine in provided.values()):
                    problems.append(f"legacy name {legacy} maps to an object the plugin lacks")
                else:
                    checked[legacy] = obj
        if undeclared:
            problems.append(
                f"legacy names {', '.join(sorted(undeclared))} missing from the metadata"
            )
        self._legacy[plugin] = checked
        return problems, raised

    def upgrade_config(
        self, registered_name: str, config: dict[str, Any], saved_version: str
    ) -> dict[str, Any] | None:
        """Ask the plugin declaring ``registered_name``, and no other, to upgrade its config.

        A hook answering for names that are not its own distribution's is never asked about
        them, so it cannot rewrite other plugins' objects. ``None``: no change.

        Raises:
            BrokenPluginError: the plugin fails to load, or its hook raises.
        """
        owners = {r.plugin for r in self._base_records() if r.registered_name == registered_name}
        if len(owners) != 1:
            return None
        (plugin,) = owners
        self.load_plugin(plugin)
        pm = self.plugin_manager
        others = [p for name, p in pm.list_name_plugin() if name != plugin]
        caller = pm.subset_hook_caller("layerhub_upgrade_config", remove_plugins=others)
        try:
            new: dict[str, Any] | None = caller(
                registered_name=registered_name, config=config, saved_version=saved_version
            )
        except _HOOK_ERRORS as error:
            raise BrokenPluginError(
                f"plugin {plugin!r}: its layerhub_upgrade_config hook raised {one_line(error)}"
            ) from error
        return new

    def legacy_names(self, plugin: str) -> dict[str, Any]:
        """The checked Keras 2 names of a loaded plugin, mapped to its objects."""
        return dict(self._legacy.get(plugin, {}))

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

        Its records are built from what its ``layerhub_layers`` hook returns; they have no
        distribution (``distribution`` and ``version`` are ``None``) and survive ``refresh()``.

        Raises:
            PluginConflictError: a plugin of that name is already installed or registered.
            BrokenPluginError: pluggy rejects the module (a hook with a wrong signature).
        """
        plugin = plugin or module.__name__.partition(".")[0]
        with self._lock:
            base = self._base_records()
            if plugin in self._by_hand or any(r.plugin == plugin for r in base):
                raise PluginConflictError(f"plugin {plugin!r} is already registered")
            try:
                self.plugin_manager.register(module, name=plugin)
            except Exception as error:  # pluggy's validation, or a hook attribute that raises
                raise BrokenPluginError(
                    f"cannot register plugin {plugin!r}: {one_line(error)}"
                ) from error
            names: builtins.list[str] = []
            for objects in self._hook_results(plugin, "layerhub_layers")[0]:
                for obj in objects if isinstance(objects, (builtins.list, tuple)) else ():
                    with contextlib.suppress(Exception):  # _check reports what is not Keras'
                        names.append(registered_name_of(obj))
            records = [
                LayerRecord(
                    name=name.partition(">")[2],
                    registered_name=name,
                    plugin=plugin,
                    module=module.__name__,
                    distribution=None,
                    version=None,
                )
                for name in dict.fromkeys(names)
            ]
            self._by_hand[plugin] = records
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
        for plugin in plugins:
            self.load_plugin(plugin)
        offers = [
            (legacy, obj)
            for plugin in plugins
            for legacy, obj in self._legacy.get(plugin, {}).items()
            if legacy in wanted
        ]
        return self._bare_names(offers, strict=True)

    def _bare_names(self, offers: Iterable[tuple[str, Any]], *, strict: bool) -> dict[str, Any]:
        """``bare name -> object``; a name offered for two objects raises, or is left out."""
        found: dict[str, tuple[str, Any]] = {}
        ambiguous: dict[str, set[str]] = {}
        for bare, obj in offers:
            name = registered_name_of(obj)
            if bare in found and found[bare][1] is not obj:
                if strict:
                    raise AmbiguousNameError(bare, sorted({found[bare][0], name}))
                ambiguous.setdefault(bare, {found[bare][0]}).add(name)
            else:
                found.setdefault(bare, (name, obj))
        for bare, names in sorted(ambiguous.items()):
            del found[bare]
            if f"bare name {bare}" not in self._warned:
                self._warned.add(f"bare name {bare}")
                warnings.warn(
                    f"layerhub: {bare} is provided as {', '.join(sorted(names))}; left out of "
                    "custom_objects(), use the registered names",
                    PluginWarning,
                    stacklevel=3,
                )
        return {bare: obj for bare, (_, obj) in found.items()}

    def custom_objects(self) -> dict[str, Any]:
        """Every loadable object under its bare name, for code that calls Keras directly.

        ``keras.saving.load_model(path, custom_objects=registry.custom_objects())`` loads old
        files that saved bare class names. The global Keras registry is not touched. Broken and
        conflicting plugins are left out (see ``problems()``), and so is a bare name that two
        plugins provide as different objects (warned about once; use the registered names).
        """
        self.load_all()
        with self._lock:
            loaded = sorted(self._modules)
            offers = [
                (legacy, obj) for plugin in loaded for legacy, obj in self._legacy[plugin].items()
            ]
            offers += [
                (r.name, self._objects[r.registered_name])
                for r in self._base_records()
                if r.plugin in self._modules and r.registered_name in self._objects
            ]
        return self._bare_names(offers, strict=False)

    def problems(self) -> builtins.list[LayerRecord]:
        """Records that are broken, conflicting or mismatched (after ``load_all`` for all)."""
        return [r for r in self.list() if r.status not in ("installed", "loaded")]


registry: Final = Registry()
