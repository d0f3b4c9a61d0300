--- Server progress ($/progress: model load, dataset build, fine-tuning) as Neovim shows it:
--- LspProgress autocommands, vim.lsp.status(), an echo line and a statusline string.

local api = vim.api

local M = {}

---@class codellama.ProgressEntry
---@field kind 'begin'|'report'|'end'
---@field title string
---@field message string?
---@field percentage integer?
---@field seq integer Position in the stream of every event seen (1, 2, …; never reused).

--- Work in progress, by token.
---@type table<string|integer, codellama.ProgressEntry>
M.active = {}

--- Every progress event seen, oldest first (capped), for :checkhealth and the tests.
---@type codellama.ProgressEntry[]
M.history = {}

--- How many progress events were seen in all (the history keeps only the newest).
M.seen = 0

local MAX_HISTORY = 500
local group ---@type integer?

local function is_ours(client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  return client ~= nil and client.name == 'codellama'
end

--- "Fine-tuning 42% loss 1.23"
---@param e codellama.ProgressEntry
---@return string
function M.format(e)
  -- Titles from the server may carry their own "codellama: " prefix.
  local parts = { (e.title:gsub('^[Cc]ode[Ll]lama:%s*', '')) }
  if e.percentage then
    parts[#parts + 1] = ('%d%%'):format(e.percentage)
  end
  if e.message and e.message ~= '' then
    parts[#parts + 1] = e.message
  end
  return table.concat(parts, ' ')
end

local function show(e)
  local how = require('codellama.config').options.progress
  local text = 'CodeLlama: ' .. M.format(e)
  if how == 'notify' then
    if e.kind ~= 'report' then
      vim.notify(text, vim.log.levels.INFO)
    end
  elseif how == 'echo' then
    -- Reports replace each other on the command line; begin/end stay in :messages.
    api.nvim_echo({ { text } }, e.kind ~= 'report', {})
  end
end

local function on_progress(ev)
  local data = ev.data or {}
  if not data.client_id or not is_ours(data.client_id) then
    return
  end
  local params = data.params or {}
  local value = params.value
  if type(value) ~= 'table' or not value.kind then
    return
  end
  local token = params.token
  local prev = M.active[token]
  M.seen = M.seen + 1
  ---@type codellama.ProgressEntry
  local e = {
    kind = value.kind,
    title = value.title or (prev and prev.title) or 'working',
    message = value.message,
    percentage = value.percentage,
    seq = M.seen,
  }
  if e.kind == 'end' then
    M.active[token] = nil
  else
    M.active[token] = e
  end
  table.insert(M.history, e)
  if #M.history > MAX_HISTORY then
    table.remove(M.history, 1)
  end
  show(e)
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
  if e.kind == 'end' then
    -- The model may have just finished loading: ask for a suggestion where the user is typing.
    local bufnr = api.nvim_get_current_buf()
    if api.nvim_get_mode().mode:sub(1, 1) == 'i' and not require('codellama.ghost').is_visible(bufnr) then
      require('codellama.ghost').schedule(bufnr)
    end
  end
end

--- Install the LspProgress autocommand (idempotent).
function M.setup()
  if group then
    return
  end
  group = api.nvim_create_augroup('codellama.progress', { clear = true })
  api.nvim_create_autocmd('LspProgress', { group = group, callback = on_progress })
end

--- "CodeLlama: Fine-tuning 42%" while something runs, else "CodeLlama".
---@return string
function M.statusline()
  local _, e = next(M.active)
  if e then
    return 'CodeLlama: ' .. M.format(e)
  end
  return 'CodeLlama'
end

return M
