"""The layerhub pytest plugin: the conformance kit as a fixture, and a check of installed layers.

Loaded through the ``pytest11`` entry point whenever layerhub is installed, so it imports
neither keras nor any plugin until a test needs them (disable it with ``-p no:layerhub``).

- Fixture ``layerhub_check``: ``layerhub.testing.check_layer`` writing into the test's
  ``tmp_path``::

      def test_scale(layerhub_check):
          layerhub_check(Scale, {"axis": -1}, (2, 3))

- ``pytest --layerhub-conformance`` (or ``layerhub_conformance = true`` in the ini file) adds one
  test per installed layer, ``layerhub-conformance::<registered name>``; narrow it with
  ``--layerhub-pattern "*Norm*"``. A plugin says how to build and feed each layer with a
  module-level ``LAYERHUB_EXAMPLES`` in the module its ``layerhub`` entry point names::

      LAYERHUB_EXAMPLES = {
          "Scale": ({"axis": -1}, (2, 3)),  # (init_kwargs, input_shape)
          "PAM": {"init_kwargs": {"gamma_initializer": "ones"}, "input_shape": (2, 4, 4, 8)},
          "FMLayer": [({"output_dim": 1}, (2, 5)), ({"output_dim": 3}, (2, 5))],
          "Tokens": {"init_kwargs": {}, "input_shape": (2, 7), "input_dtype": "int32",
                     "mixed_precision": "mixed_bfloat16", "skip": [8]},
      }

  A value is an ``(init_kwargs, input_shape)`` pair, a dict of ``check_layer`` keyword
  arguments (``input_dtype``, ``mixed_precision``, ``skip``, ``rules``, ``input_data``,
  ``config_exempt``, ``atol``, ``rtol``, ``seed``), or a list of either. Layers without an entry
  are skipped, saying so.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from layerhub._private.registry.records import LayerRecord

EXAMPLES_ATTRIBUTE = "LAYERHUB_EXAMPLES"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("layerhub", "layerhub conformance kit")
    group.addoption(
        "--layerhub-conformance",
        action="store_true",
        default=None,
        help="check every installed layerhub layer against the conformance rules",
    )
    group.addoption(
        "--layerhub-pattern",
        default=None,
        metavar="PATTERN",
        help="with --layerhub-conformance, only layers matching this fnmatch pattern",
    )
    parser.addini("layerhub_conformance", "run the layerhub conformance check", type="bool")
    parser.addini("layerhub_pattern", "layers the layerhub conformance check covers", default="*")


@pytest.fixture
def layerhub_check(tmp_path: Path) -> Callable[..., Any]:
    """``layerhub.testing.check_layer``, writing its files into this test's ``tmp_path``."""
    from layerhub.testing import check_layer

    return functools.partial(check_layer, tmp_path=tmp_path)


class ConformanceItem(pytest.Item):
    """The conformance check of one installed layer, with its plugin's examples."""

    def __init__(self, *, record: LayerRecord, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record

    def runtest(self) -> None:
        import keras

        from layerhub import LayerHubError, registry
        from layerhub.testing import check_layer

        record = self.record
        try:
            obj = registry.get(record.registered_name)
            module = registry.load_plugin(record.plugin)
        except LayerHubError as error:
            raise AssertionError(
                f"[layerhub rule 7: plugin registration] {record.registered_name}: {error}"
            ) from None
        if not (isinstance(obj, type) and issubclass(obj, keras.layers.Layer)):
            pytest.skip(f"{record.registered_name} is not a layer class")
        examples = getattr(module, EXAMPLES_ATTRIBUTE, {}).get(record.name)
        if examples is None:
            pytest.skip(
                f"{record.module} has no {EXAMPLES_ATTRIBUTE} entry for {record.name}; to "
                f"check it add {EXAMPLES_ATTRIBUTE} = "
                f"{{{record.name!r}: (init_kwargs, input_shape)}}"
            )
        for example in examples if isinstance(examples, list) else [examples]:
            if isinstance(example, dict):
                kwargs = dict(example)
            else:
                init_kwargs, input_shape = example
                kwargs = {"init_kwargs": init_kwargs, "input_shape": input_shape}
            with tempfile.TemporaryDirectory(prefix="layerhub-conformance-") as scratch:
                check_layer(obj, **{"tmp_path": scratch, **kwargs})

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError) and "[layerhub rule" in str(excinfo.value):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return self.record.module, None, f"layerhub conformance: {self.record.registered_name}"


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return config.getini(name) if value is None else value


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so both apply to these items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not _option(config, "layerhub_conformance"):
        return
    from layerhub import registry

    for record in registry.list(_option(config, "layerhub_pattern") or "*"):
        items.append(
            ConformanceItem.from_parent(
                session,
                name=record.registered_name,
                nodeid=f"layerhub-conformance::{record.registered_name}",
                record=record,
            )
        )
