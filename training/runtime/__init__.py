"""Model runtime shared by the language server, LoRA training and evaluation.

Modules (import them directly; this package imports nothing heavy):

- :mod:`training.runtime.spec`    -- model specs (hub id, local dir, ``bundled:<name>`` models)
- :mod:`training.runtime.loader`  -- ``load_model`` → :class:`LoadedModel` (+ PEFT adapters)
- :mod:`training.runtime.fim`     -- fill-in-the-middle templates per model family
- :mod:`training.runtime.prompt`  -- token-budgeted prompts
- :mod:`training.runtime.stops`   -- pure stop rules and post-processing of completions
- :mod:`training.runtime.engine`  -- the synchronous, cancellable generation engine
- :mod:`training.runtime.tiny`    -- tiny random Llama checkpoints for tests and editor e2e runs
"""
