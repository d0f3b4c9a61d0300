"""One module per refactor strategy; ``lsp_server.refactor.plan.make_plan`` picks one.

- ``docstring``: ask for the docstring sentence only, insert it under the signature;
- ``signatures``: ask for each ``def`` line, keep only usable annotations;
- ``rename``: ask for ``old -> new`` pairs, rename through the syntax tree;
- ``rewrite``: the whole region in a code fence (every non-Python language, and the fallback);
- ``common``: limits and syntax-tree helpers the Python strategies share.

Each Python strategy module has ``plan(source, tree, region) -> Plan | None`` (``None``: nothing
it can work on here, so ``make_plan`` falls back to a rewrite).
"""

from __future__ import annotations
