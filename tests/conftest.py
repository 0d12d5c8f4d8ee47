from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from layerhub import Registry
from layerhub.testing.fakes import write_fake_distribution

# Shared helper modules beside the tests (``_hardening``) import by name: --import-mode=importlib
# does not put this directory on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on ``sys.path`` for fake distributions; a fresh registry sees them."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


@pytest.fixture
def fake_dist(site: Path) -> Callable[..., Path]:
    def make(distribution: str, **kwargs: object) -> Path:
        return write_fake_distribution(site, distribution, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def fresh_registry() -> Callable[[], Registry]:
    return lambda: Registry(autoload=True)


def pytest_configure(config: pytest.Config) -> None:
    sys.dont_write_bytecode = True
