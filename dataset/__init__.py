"""Workspace files → clean, secret-free JSONL records, kept in sync with the workspace.

`dataset` imports nothing else of this project; `training` and `lsp_server` build on it.
"""
