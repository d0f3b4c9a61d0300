--- :checkhealth codellama — Neovim version, the server command, a running client and what it
--- offers, the ghost-text keymaps and the last error seen.

local M = {}

local health = vim.health

local function check_nvim()
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok(('Neovim %s'):format(tostring(vim.version())))
  else
    health.error('Neovim 0.11 or newer is required (vim.lsp.config / vim.lsp.enable)')
  end
end

local function check_cmd()
  local cfg = vim.lsp.config.codellama
  local cmd = cfg and cfg.cmd
  if type(cmd) ~= 'table' or #cmd == 0 then
    return health.info('server command is a function or unset; cannot check it here')
  end
  if vim.fn.executable(cmd[1]) ~= 1 then
    return health.error(
      ('server command not found: %s'):format(cmd[1]),
      { 'pip install codellama-lsp (or set cmd in require("codellama").setup{})' }
    )
  end
  health.ok('server command: ' .. table.concat(cmd, ' '))
  if cmd[2] == '-m' and cmd[3] then
    local out = vim.system({ cmd[1], '-c', 'import ' .. cmd[3] }, { text = true }):wait(15000)
    if out.code == 0 then
      health.ok(('%s can import %s'):format(cmd[1], cmd[3]))
    else
      health.error(('%s cannot import %s: %s'):format(cmd[1], cmd[3], vim.trim(out.stderr or '')))
    end
  end
end

local function check_client()
  local clients = vim.lsp.get_clients({ name = 'codellama' })
  if #clients == 0 then
    return health.warn('no codellama client is running', { 'open a supported file; check :LspInfo / :checkhealth vim.lsp' })
  end
  for _, client in ipairs(clients) do
    health.ok(('client %d running, root %s'):format(client.id, client.root_dir or '(single file)'))
    local caps = client.server_capabilities or {}
    if caps.inlineCompletionProvider then
      health.ok('server offers textDocument/inlineCompletion (ghost text)')
    else
      health.error('server does not offer textDocument/inlineCompletion: no ghost text')
    end
    local provided = type(caps.executeCommandProvider) == 'table' and caps.executeCommandProvider.commands or {}
    local missing = {}
    for _, name in pairs(require('codellama.commands').names) do
      if name ~= 'codellama.refactor' and not vim.list_contains(provided, name) then
        missing[#missing + 1] = name
      end
    end
    if #missing == 0 then
      health.ok('server offers all codellama.* commands')
    else
      health.warn('server does not offer: ' .. table.concat(missing, ', '))
    end
  end
end

local function check_ghost()
  local o = require('codellama.config').options
  if not o.ghost_text.enabled then
    return health.info('ghost text disabled (ghost_text.enabled = false)')
  end
  local keys = {}
  for name, lhs in pairs(o.keymaps) do
    keys[#keys + 1] = ('%s=%s'):format(name, lhs or 'off')
  end
  table.sort(keys)
  health.ok(('ghost text on, debounce %d ms, keys: %s'):format(o.ghost_text.debounce_ms, table.concat(keys, ' ')))
  local ghost = require('codellama.ghost')
  local s = ghost.stats
  health.info(
    ('requests %d, cancelled %d, answers %d, shown %d, stale %d, errors %d'):format(
      s.requests,
      s.cancelled,
      s.responses,
      s.shown,
      s.stale,
      s.errors
    )
  )
  if ghost.last_error then
    health.warn('last inlineCompletion error: ' .. ghost.last_error)
  end
end

function M.check()
  health.start('codellama: Neovim')
  check_nvim()
  health.start('codellama: server')
  check_cmd()
  check_client()
  health.start('codellama: ghost text')
  check_ghost()
end

return M
