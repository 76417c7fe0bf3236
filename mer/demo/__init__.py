"""The generated demo corpus (CASME II, SAMM, SMIC-HS, CK+ and JAFFE look-alikes in the real folder layouts) and
`mer demo`, the whole pipeline on it.

`spec` (datasets, `DemoSpec`) → `faces` (photo bases, identities, expression warps) → `layouts` (per-dataset plans,
coding sheets) → `corpus` (`generate_corpus`, summary, marker, preview); these import only low layers, so
`mer demo --data-only` stays light. `run` (`demo_config`, `run_demo`) imports prepare, train and evaluation and is
loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mer.demo.corpus import MARKER, PREVIEW, DemoSummary, generate_corpus, load_summary
from mer.demo.spec import DemoSpec

if TYPE_CHECKING:
    from mer.demo.run import demo_config, run_demo

__all__ = [
    "MARKER",
    "PREVIEW",
    "DemoSpec",
    "DemoSummary",
    "demo_config",
    "generate_corpus",
    "load_summary",
    "run_demo",
]

_LAZY = {"demo_config": "mer.demo.run", "run_demo": "mer.demo.run"}


def __getattr__(name: str) -> Any:
    """`run_demo` / `demo_config` on first use: their module imports training (lightning); the corpus does not."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
