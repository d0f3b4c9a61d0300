"""Model-written refactorings that are validated before the user sees them.

A pure core, no LSP glue and no torch at import time:

- ``actions``: the refactor actions offered in ``textDocument/codeAction`` and their strategies;
- ``region``: which lines an action rewrites (the selection, or the enclosing function/class);
- ``prompts``: chat messages per action and their rendering through the tokenizer's template;
- ``plan``: the strategy registry (``make_plan``) turning a request into model steps;
- ``steps``: what a plan is made of (steps, answers, line replacements);
- ``strategies``: one module per strategy, turning the model's answer into line replacements;
- ``validate``: Python ast checks, bracket/quote balance for other languages;
- ``edits``: the minimal versioned ``WorkspaceEdit`` (only changed lines);
- ``generate``: chat-style generation with a cancel ``threading.Event``;
- ``service``: plan → generate → apply → validate, with one retry.
"""

from __future__ import annotations
