--- Buffer-local :CodeLlama* commands, run on the server with client:exec_cmd(), and the client
--- side of the refactor code actions ("Refactor with instruction…" asks with vim.ui.input).

local api = vim.api

local function resolve_bufnr(bufnr)
  return (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
end

local M = {}

--- Server command names (mirrors docs/architecture.md and the VS Code client).
M.names = {
  status = 'codellama.status',
  finetune = 'codellama.finetune',
  cancel = 'codellama.cancelFinetune',
  evaluate = 'codellama.evaluate',
  use_adapter = 'codellama.useAdapter',
  rebuild_dataset = 'codellama.rebuildDataset',
  refactor = 'codellama.refactor',
}

--- The last answer of each command: { err = ..., result = ... } (for statuslines and tests).
---@type table<string, {err: lsp.ResponseError?, result: any}>
M.last = {}

---@return vim.lsp.Client?
local function get_client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = 'codellama' })[1]
    or vim.lsp.get_clients({ name = 'codellama' })[1]
end

--- "maxSteps=5 maxMinutes=1.5 resume=true" → { maxSteps = 5, maxMinutes = 1.5, resume = true }
---@param fargs string[]
---@return table?
function M.parse_kv(fargs)
  if #fargs == 0 then
    return nil
  end
  local out = {}
  for _, arg in ipairs(fargs) do
    local k, v = arg:match('^([%w_]+)=(.*)$')
    if not k then
      error(('expected key=value, got %q'):format(arg), 0)
    end
    if v == 'true' or v == 'false' then
      out[k] = v == 'true'
    elseif tonumber(v) then
      out[k] = tonumber(v)
    else
      out[k] = v
    end
  end
  return out
end

-- Shown first in status output; other keys follow alphabetically.
local FIRST = { message = 1, model = 2, completions = 3, features = 4, server = 5 }

local function sorted_keys(t)
  local keys = vim.tbl_keys(t)
  table.sort(keys, function(a, b)
    local pa, pb = FIRST[a] or 99, FIRST[b] or 99
    if pa ~= pb then
      return pa < pb
    end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function scalar(v)
  if v == vim.NIL or v == nil then
    return '-'
  end
  return tostring(v)
end

local function format_into(lines, t, indent)
  if vim.islist(t) then
    local all_scalar = true
    for _, v in ipairs(t) do
      all_scalar = all_scalar and type(v) ~= 'table'
    end
    if all_scalar then
      lines[#lines + 1] = indent .. table.concat(vim.tbl_map(scalar, t), ', ')
      return
    end
  end
  for _, k in ipairs(sorted_keys(t)) do
    local v = t[k]
    if type(v) == 'table' and not vim.tbl_isempty(v) then
      if vim.islist(v) and #v > 0 and type(v[1]) ~= 'table' then
        lines[#lines + 1] = ('%s%s: %s'):format(indent, k, table.concat(vim.tbl_map(scalar, v), ', '))
      else
        lines[#lines + 1] = ('%s%s:'):format(indent, k)
        format_into(lines, v, indent .. '  ')
      end
    else
      lines[#lines + 1] = ('%s%s: %s'):format(indent, k, type(v) == 'table' and '-' or scalar(v))
    end
  end
end

--- Lines describing a command's result: nested tables as an indented "key: value" outline.
---@return string[]
function M.format_result(result)
  if result == nil or result == vim.NIL then
    return {}
  end
  if type(result) ~= 'table' then
    return vim.split(tostring(result), '\n', { plain = true })
  end
  if result.message and vim.tbl_count(result) == 1 then
    return vim.split(tostring(result.message), '\n', { plain = true })
  end
  local lines = {}
  format_into(lines, result, '')
  return lines
end

local function show_float(title, lines)
  vim.lsp.util.open_floating_preview(lines, '', {
    title = (' CodeLlama %s '):format(title),
    border = 'rounded',
    focus = false,
  })
end

--- Tell the user how a command went: errors as errors; a short answer as a notification; a
--- long one (an evaluation report) in a floating window, never a wall of messages.
local function notify(title, err, result)
  if err then
    vim.notify(('CodeLlama %s failed: %s'):format(title, err.message or tostring(err)), vim.log.levels.ERROR)
    return
  end
  if type(result) == 'table' and type(result.message) == 'string' then
    return vim.notify(('CodeLlama %s: %s'):format(title, result.message))
  end
  local lines = M.format_result(result)
  if #lines > 3 then
    return show_float(title, lines)
  end
  vim.notify(('CodeLlama %s: %s'):format(title, #lines > 0 and table.concat(lines, '; ') or 'done'))
end

--- Run a server command. `cb(err, result)` defaults to a notification with the answer.
---@param name string key of M.names
---@param arg table|string|nil the one argument object (nil sends no arguments)
---@param cb fun(err: lsp.ResponseError?, result: any)?
---@param bufnr integer?
function M.run(name, arg, cb, bufnr)
  bufnr = resolve_bufnr(bufnr)
  local client = get_client(bufnr)
  if not client then
    vim.notify('CodeLlama: the codellama language server is not running', vim.log.levels.WARN)
    return
  end
  local command = { title = name, command = M.names[name], arguments = arg ~= nil and { arg } or nil }
  client:exec_cmd(command, { bufnr = bufnr }, function(err, result)
    M.last[name] = { err = err, result = result }
    if cb then
      cb(err, result)
    else
      notify(name, err, result)
    end
  end)
end

local function show_status(err, result)
  if err then
    return notify('status', err)
  end
  local lines = M.format_result(result)
  show_float('status', #lines > 0 and lines or { '(empty status)' })
end

local function kv_command(name)
  return function(cmd)
    local ok, arg = pcall(M.parse_kv, cmd.fargs)
    if not ok then
      return vim.notify(('CodeLlama %s: %s'):format(name, arg), vim.log.levels.ERROR)
    end
    M.run(name, arg)
  end
end

local function use_adapter(cmd)
  local function send(path)
    if not path or path == '' then
      return
    end
    if path ~= 'none' then
      path = vim.fn.fnamemodify(vim.fn.expand(path), ':p')
    end
    M.run('use_adapter', { path = path })
  end
  if cmd.args ~= '' then
    return send(cmd.args)
  end
  vim.ui.input({ prompt = 'Adapter directory (or none): ', completion = 'dir' }, send)
end

--- Ask for the instruction of "Refactor with instruction…" when the action does not carry one,
--- then send codellama.refactor; an edit returned in the answer is applied.
---@param client vim.lsp.Client
local function refactor_handler(client)
  return function(command, ctx)
    local arg = vim.deepcopy((command.arguments or {})[1] or {})
    local function send()
      client:request('workspace/executeCommand', { command = command.command, arguments = { arg } }, function(err, result)
        M.last.refactor = { err = err, result = result }
        if err then
          return notify('refactor', err)
        end
        if type(result) == 'table' and (result.changes or result.documentChanges) then
          vim.lsp.util.apply_workspace_edit(result, client.offset_encoding)
        end
      end, ctx.bufnr)
    end
    local needs = arg.instruction == '' or (arg.instruction == nil and tostring(arg.kind or ''):find('instruction') ~= nil)
    if not needs then
      return send()
    end
    vim.ui.input({ prompt = 'Refactor instruction: ' }, function(input)
      if input and input ~= '' then
        arg.instruction = input
        send()
      end
    end)
  end
end

--- Open the refactor code actions of the server for the selection (or the cursor's function).
---@param cmd table? user-command arguments (range)
function M.refactor(cmd)
  local opts = {
    context = { only = { 'refactor' }, diagnostics = {} },
    filter = function(action)
      return type(action.kind) ~= 'string' or action.kind:match('^refactor') ~= nil
    end,
  }
  if cmd and cmd.range and cmd.range > 0 then
    opts.range = { start = { cmd.line1, 0 }, ['end'] = { cmd.line2, math.max(0, #(vim.fn.getline(cmd.line2)) - 1) } }
  end
  vim.lsp.buf.code_action(opts)
end

---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  client.commands[M.names.refactor] = refactor_handler(client)
  local defs = {
    {
      'CodeLlamaStatus',
      function()
        M.run('status', nil, show_status, bufnr)
      end,
      { desc = 'CodeLlama: show model, adapter, training and latency' },
    },
    { 'CodeLlamaFinetune', kv_command('finetune'), { nargs = '*', desc = 'CodeLlama: fine-tune on this workspace' } },
    {
      'CodeLlamaCancel',
      function()
        M.run('cancel')
      end,
      { desc = 'CodeLlama: cancel fine-tuning' },
    },
    { 'CodeLlamaEvaluate', kv_command('evaluate'), { nargs = '*', desc = 'CodeLlama: evaluate the adapter' } },
    { 'CodeLlamaUseAdapter', use_adapter, { nargs = '?', complete = 'dir', desc = 'CodeLlama: serve an adapter (or none)' } },
    {
      'CodeLlamaRebuildDataset',
      function()
        M.run('rebuild_dataset')
      end,
      { desc = 'CodeLlama: rebuild the workspace dataset' },
    },
    { 'CodeLlamaRefactor', M.refactor, { range = true, desc = 'CodeLlama: refactor actions for the selection' } },
  }
  for _, d in ipairs(defs) do
    api.nvim_buf_create_user_command(bufnr, d[1], d[2], d[3])
  end
end

return M
