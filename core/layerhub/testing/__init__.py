"""layerhub.testing: the conformance kit for layer plugins.

``check_layer`` checks a layer class against the eight layerhub rules (one module each, in
``layerhub.testing.rules``) and explains every rule it breaks; ``assert_roundtrip`` and
``run_in_fresh_interpreter`` are the fresh-interpreter helpers the core's and the plugins' tests
share; ``weight_gradients``, ``input_gradients`` and ``assert_training_reduces_loss`` are their
shared numeric checks. The pytest plugin (``layerhub.testing.pytest_plugin``) offers
``check_layer`` as the ``layerhub_check`` fixture and, with ``--layerhub-conformance``, checks
every installed layer. Importing this module imports neither keras nor numpy; the first use does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from layerhub.testing._checks import (
        RULES,
        ConformanceError,
        ConformanceNote,
        ConformanceReport,
        check_layer,
    )
    from layerhub.testing._fresh import RoundTripError, assert_roundtrip, run_in_fresh_interpreter
    from layerhub.testing._masking import assert_mask_passes_through
    from layerhub.testing._training import (
        assert_training_reduces_loss,
        input_gradients,
        weight_gradients,
    )
    from layerhub.testing.fakes import write_fake_distribution

__all__ = [
    "RULES",
    "ConformanceError",
    "ConformanceNote",
    "ConformanceReport",
    "RoundTripError",
    "assert_mask_passes_through",
    "assert_roundtrip",
    "assert_training_reduces_loss",
    "check_layer",
    "input_gradients",
    "run_in_fresh_interpreter",
    "weight_gradients",
    "write_fake_distribution",
]

_HOMES = {
    "RULES": "_checks",
    "ConformanceError": "_checks",
    "ConformanceNote": "_checks",
    "ConformanceReport": "_checks",
    "check_layer": "_checks",
    "RoundTripError": "_fresh",
    "assert_roundtrip": "_fresh",
    "assert_mask_passes_through": "_masking",
    "run_in_fresh_interpreter": "_fresh",
    "assert_training_reduces_loss": "_training",
    "input_gradients": "_training",
    "weight_gradients": "_training",
    "write_fake_distribution": "fakes",
}


def __getattr__(name: str) -> Any:
    # pytest imports this package for its plugin in every session: keras waits for first use.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"layerhub.testing.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'layerhub.testing' has no attribute {name!r}")
