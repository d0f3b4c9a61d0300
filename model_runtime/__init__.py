"""Model runtime shared by the language server, LoRA training and evaluation.

Modules (import them directly; this package imports nothing heavy):

- :mod:`model_runtime.spec`    -- model specs (hub id, local dir, ``bundled:<name>`` models)
- :mod:`model_runtime.loader`  -- ``load_model`` → :class:`LoadedModel` (+ PEFT adapters)
- :mod:`model_runtime.fim`     -- fill-in-the-middle templates per model family
- :mod:`model_runtime.prompt`  -- token-budgeted prompts
- :mod:`model_runtime.stops`   -- pure stop rules and post-processing of completions
- :mod:`model_runtime.engine`  -- the synchronous, cancellable generation engine
- :mod:`model_runtime.tiny`    -- tiny random Llama checkpoints for tests and editor e2e runs
"""
