--- codellama.nvim: the Neovim client of codellama-lsp.
---
--- `setup{}` stores options, passes server settings to the `codellama` LSP config
--- (lsp/codellama.lua) and enables it. `attach()` runs from that config's on_attach and makes
--- everything buffer-local: ghost-text autocommands, keymaps and the :CodeLlama* commands.
--- All intelligence stays in the server.

local api = vim.api
local config = require('codellama.config')

local M = {}

local augroup = api.nvim_create_augroup('codellama', { clear = true })

--- Configure the client and (by default) enable the language server.
---@param user codellama.Opts|table|nil
function M.setup(user)
  config.options = config.merge(user)
  local o = config.options
  api.nvim_set_hl(0, o.ghost_text.hl_group, { link = 'Comment', default = true })
  local lsp = {}
  if o.cmd then
    lsp.cmd = o.cmd
  end
  if o.filetypes then
    lsp.filetypes = o.filetypes
  end
  local server = M.server_settings(o.server, user)
  lsp.init_options = server
  lsp.settings = { codellama = vim.deepcopy(server) }
  vim.lsp.config('codellama', lsp)
  require('codellama.progress').setup()
  if o.enable then
    vim.lsp.enable('codellama')
  end
end

--- The settings sent to the server: `server` with `debounceMs = 0`. The plugin debounces
--- keystrokes itself (`ghost_text.debounce_ms`), so the server must not wait a second time; a
--- `server.debounceMs` the user gave becomes the plugin's delay unless `ghost_text.debounce_ms`
--- was given too.
---@param server table<string, any>
---@param user table? the options passed to setup()
---@return table<string, any>
function M.server_settings(server, user)
  local out = vim.deepcopy(server)
  local own = user and user.ghost_text and user.ghost_text.debounce_ms
  if type(out.debounceMs) == 'number' and own == nil then
    config.options.ghost_text.debounce_ms = out.debounceMs
  end
  out.debounceMs = 0
  return out
end

--- Change server settings at runtime (e.g. `{ maxNewTokens = 32 }`): updates every running
--- codellama client and sends workspace/didChangeConfiguration; the server reloads what changed.
---@param settings table<string, any>
function M.set_server_settings(settings)
  settings = M.server_settings(settings)
  config.options.server = vim.tbl_deep_extend('force', config.options.server, settings)
  for _, client in ipairs(vim.lsp.get_clients({ name = 'codellama' })) do
    client.settings = vim.tbl_deep_extend('force', client.settings or {}, { codellama = settings })
    client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  end
end

local function map(bufnr, lhs, fn, desc)
  if lhs then
    vim.keymap.set('i', lhs, fn, { buffer = bufnr, desc = desc, silent = true })
  end
end

--- The previous insert-mode mapping of `lhs` (buffer-local or global) re-created under a
--- <Plug> name, so that <Tab> falls through to it when no suggestion is shown.
---@return string keys to feed when nothing is shown
local function fallback_for(bufnr, lhs)
  local prev = vim.fn.maparg(lhs, 'i', false, true)
  if vim.tbl_isempty(prev) or (prev.desc or ''):match('^CodeLlama') then
    return lhs
  end
  local plug = ('<Plug>(codellama-fallback-%d-%s)'):format(bufnr, lhs:gsub('[<>]', ''))
  local rhs = prev.callback or prev.rhs or ''
  vim.keymap.set('i', plug, rhs, {
    buffer = bufnr,
    expr = prev.expr == 1,
    remap = prev.noremap == 0,
    silent = prev.silent == 1,
    replace_keycodes = prev.replace_keycodes == 1,
  })
  return plug
end

local function set_keymaps(bufnr)
  local ghost = require('codellama.ghost')
  local keys = config.options.keymaps
  if keys.accept then
    local fallback = fallback_for(bufnr, keys.accept)
    -- An <expr> map cannot edit the buffer (textlock); <Cmd> runs right after it, in order.
    vim.keymap.set('i', keys.accept, function()
      if ghost.is_visible(bufnr) then
        return '<Cmd>lua require("codellama.ghost").accept("all")<CR>'
      end
      return fallback
    end, {
      buffer = bufnr,
      expr = true,
      remap = true, -- reaches the <Plug> fallback; a returned lhs itself is not remapped again
      desc = 'CodeLlama: accept suggestion',
    })
  end
  map(bufnr, keys.accept_word, function()
    ghost.accept('word', bufnr)
  end, 'CodeLlama: accept next word')
  map(bufnr, keys.accept_line, function()
    ghost.accept('line', bufnr)
  end, 'CodeLlama: accept line')
  map(bufnr, keys.dismiss, function()
    ghost.dismiss(bufnr)
  end, 'CodeLlama: dismiss suggestion')
  map(bufnr, keys.trigger, function()
    ghost.request(bufnr, true)
  end, 'CodeLlama: suggest now')
end

local attached = {} ---@type table<integer, boolean>

--- Buffer-local setup for a codellama client; called from on_attach in lsp/codellama.lua.
---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  require('codellama.commands').attach(client, bufnr)
  require('codellama.progress').setup()
  if attached[bufnr] then
    return
  end
  attached[bufnr] = true
  api.nvim_set_hl(0, config.options.ghost_text.hl_group, { link = 'Comment', default = true })
  set_keymaps(bufnr)
  local ghost = require('codellama.ghost')
  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP', 'CursorMovedI' }, {
    group = augroup,
    buffer = bufnr,
    callback = function()
      ghost.on_change(bufnr)
    end,
  })
  api.nvim_create_autocmd('InsertEnter', {
    group = augroup,
    buffer = bufnr,
    callback = function()
      ghost.schedule(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = augroup,
    buffer = bufnr,
    callback = function()
      ghost.clear(bufnr, true)
    end,
  })
  api.nvim_create_autocmd('LspDetach', {
    group = augroup,
    buffer = bufnr,
    callback = function(ev)
      local c = vim.lsp.get_client_by_id(ev.data.client_id)
      if c and c.name == 'codellama' then
        ghost.detach(bufnr)
        attached[bufnr] = nil
        api.nvim_clear_autocmds({ group = augroup, buffer = bufnr })
        for _, lhs in pairs(config.options.keymaps) do
          if lhs then
            pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
          end
        end
      end
    end,
  })
  -- Attached while the user is already typing (the server took a moment to start): ask now.
  if bufnr == api.nvim_get_current_buf() and api.nvim_get_mode().mode:sub(1, 1) == 'i' then
    ghost.schedule(bufnr)
  end
end

--- A short statusline string: progress of the server's current work, or "CodeLlama".
---@return string
function M.statusline()
  return require('codellama.progress').statusline()
end

--- Ask the server for its status; `cb(err, result)`.
---@param cb fun(err: lsp.ResponseError?, result: any)
function M.status(cb)
  require('codellama.commands').run('status', nil, cb)
end

return M
