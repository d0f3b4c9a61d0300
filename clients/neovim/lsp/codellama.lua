---@brief
---
--- codellama-lsp: inline (ghost-text) completions from a CodeLlama-family model, refactor code
--- actions and one-command LoRA fine-tuning on the workspace.
---
--- Install the server (`pip install codellama-lsp`, giving `codellama-lsp`), then:
--- ```lua
--- vim.lsp.enable('codellama')          -- or require('codellama').setup({ ... })
--- ```
--- Buffer-local commands: `:CodeLlamaStatus`, `:CodeLlamaFinetune [maxSteps=N maxMinutes=M]`,
--- `:CodeLlamaCancel`, `:CodeLlamaEvaluate`, `:CodeLlamaUseAdapter [path|none]`,
--- `:CodeLlamaRebuildDataset`, `:CodeLlamaRefactor`. See `:help codellama`.

--- `codellama-lsp` when it is on PATH, else the module of the same Python package.
local function default_cmd()
  if vim.fn.executable('codellama-lsp') == 1 then
    return { 'codellama-lsp' }
  end
  return { vim.fn.exepath('python3') ~= '' and 'python3' or 'python', '-m', 'lsp_server' }
end

---@type vim.lsp.Config
return {
  cmd = default_cmd(),
  filetypes = {
    'bash', 'c', 'cpp', 'cs', 'cuda', 'dart', 'elixir', 'erlang', 'go', 'haskell', 'html', 'java',
    'javascript', 'javascriptreact', 'julia', 'kotlin', 'lua', 'make', 'ocaml', 'perl', 'php',
    'python', 'r', 'ruby', 'rust', 'scala', 'sh', 'sql', 'swift', 'typescript', 'typescriptreact',
    'vim', 'vue', 'zig', 'zsh',
  },
  root_markers = { '.codellama', '.git', 'pyproject.toml', 'setup.py', 'package.json', 'Cargo.toml', 'go.mod' },
  -- Server settings (camelCase; docs/architecture.md). Empty: the server's defaults — the bundled
  -- model on CPU, CodeLlama-7B with a CUDA GPU. Set them with require('codellama').setup({ server = ... })
  -- or vim.lsp.config('codellama', { init_options = ..., settings = { codellama = ... } }).
  -- debounceMs = 0: the plugin already waits ghost_text.debounce_ms before asking; a second wait
  -- in the server would only add latency (one debounce, on the client's side).
  init_options = { debounceMs = 0 },
  settings = { codellama = { debounceMs = 0 } },
  -- `python -m lsp_server` runs in the project directory: never import the project's modules
  -- (a `torch.py` or `training/` there would shadow the server's own).
  cmd_env = { PYTHONSAFEPATH = '1' },
  ---@param client vim.lsp.Client
  ---@param bufnr integer
  on_attach = function(client, bufnr)
    require('codellama').attach(client, bufnr)
  end,
}
