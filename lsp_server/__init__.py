"""The codellama-lsp language server: LSP glue over the model runtime and the workspace dataset.

Importing this package (and ``lsp_server.setup``) never imports torch: the server answers
``initialize`` first and loads the model in the background.
"""

from __future__ import annotations

__version__ = "0.1.0"
