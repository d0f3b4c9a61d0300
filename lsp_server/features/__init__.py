"""Server features: one class each, listed in ``lsp_server.setup.FEATURES``."""
