--- Attach the client's buffer-local features to any `codellama` LSP client, also when a user's own
--- vim.lsp.config('codellama', { on_attach = ... }) replaced the on_attach of lsp/codellama.lua.
if vim.g.loaded_codellama then
  return
end
vim.g.loaded_codellama = true

vim.api.nvim_create_autocmd('LspAttach', {
  group = vim.api.nvim_create_augroup('codellama.attach', { clear = true }),
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if client and client.name == 'codellama' then
      require('codellama').attach(client, ev.buf)
    end
  end,
})
