"""The codellama-lsp language server: LSP glue over the model runtime and the workspace dataset."""
