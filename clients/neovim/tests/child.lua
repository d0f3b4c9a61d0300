--- Loaded into the Neovim under test (nvim --embed): sets the plugin up like a user's config
--- would, against the real server, and exposes read-only probes for the driver (runner.lua).
--- Input reaches this Neovim only through nvim_input(), i.e. as typed keys.

local cfg = vim.json.decode(os.getenv('CODELLAMA_TEST_CONFIG'))

vim.opt.runtimepath:prepend(cfg.plugin_dir)
vim.cmd('filetype plugin indent on')
vim.cmd('runtime! plugin/codellama.lua')
vim.o.swapfile = false
vim.g.python_recommended_style = 0 -- keep noexpandtab: <Tab> then inserts a real tab
vim.o.expandtab = false
vim.o.autoindent = true
vim.o.columns = 120
vim.o.lines = 40

_G.T = { notes = {} }

-- Record what the plugin tells the user (and still show it).
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(T.notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
  return notify(msg, level, opts)
end

-- "Refactor with instruction…" asks with vim.ui.input; the test answers like a user would.
T.input_answer = nil
T.input_prompts = {}
vim.ui.input = function(opts, on_confirm)
  table.insert(T.input_prompts, opts.prompt or '')
  vim.schedule(function()
    on_confirm(T.input_answer)
  end)
end

-- A user's own <Tab> mapping made before the plugin attaches (like a completion plugin's): the
-- plugin must fall through to it when no suggestion is shown.
vim.keymap.set('i', '<Tab>', function()
  vim.g.user_tab = (vim.g.user_tab or 0) + 1
  return '<Tab>'
end, { expr = true, desc = 'user tab' })

require('codellama').setup({
  cmd = cfg.server_cmd,
  server = cfg.server_settings,
  ghost_text = { debounce_ms = cfg.debounce_ms or 50 },
})

function T.client()
  local c = vim.lsp.get_clients({ bufnr = 0, name = 'codellama' })[1]
  if not c then
    return nil
  end
  local caps = c.server_capabilities or {}
  local commands = type(caps.executeCommandProvider) == 'table' and caps.executeCommandProvider.commands or {}
  return { id = c.id, inline = caps.inlineCompletionProvider ~= nil, commands = commands, initialized = c.initialized }
end

function T.ghost()
  local sug = require('codellama.ghost').get(0)
  if not sug then
    return nil
  end
  return { text = sug.text, row = sug.row, col = sug.col }
end

--- Text drawn by our extmarks (what the user sees), first line + virtual lines.
function T.drawn()
  local marks = vim.api.nvim_buf_get_extmarks(0, require('codellama.ghost').ns, 0, -1, { details = true })
  local out = {}
  for _, m in ipairs(marks) do
    local d = m[4]
    local first = {}
    for _, chunk in ipairs(d.virt_text or {}) do
      first[#first + 1] = chunk[1]
    end
    local lines = { table.concat(first) }
    for _, vl in ipairs(d.virt_lines or {}) do
      local parts = {}
      for _, chunk in ipairs(vl) do
        parts[#parts + 1] = chunk[1]
      end
      lines[#lines + 1] = table.concat(parts)
    end
    out[#out + 1] = { row = m[2], col = m[3], lines = lines, hl = d.virt_text and d.virt_text[1][2] or nil }
  end
  return out
end

function T.state()
  local pos = vim.api.nvim_win_get_cursor(0)
  return {
    mode = vim.api.nvim_get_mode().mode,
    row = pos[1] - 1,
    col = pos[2],
    lines = vim.api.nvim_buf_get_lines(0, 0, -1, false),
    tick = vim.api.nvim_buf_get_changedtick(0),
  }
end

function T.stats()
  return vim.deepcopy(require('codellama.ghost').stats)
end

function T.last(name)
  local l = require('codellama.commands').last[name]
  if not l then
    return nil
  end
  return { err = l.err and (l.err.message or tostring(l.err)) or vim.NIL, result = l.result }
end

function T.progress()
  return vim.deepcopy(require('codellama.progress').history)
end

--- How many progress events were seen in all (entries carry `seq`; the history is capped).
function T.progress_seen()
  return require('codellama.progress').seen
end

function T.buf_commands()
  return vim.tbl_keys(vim.api.nvim_buf_get_commands(0, {}))
end

--- Lines of every floating window (the :CodeLlamaStatus popup).
function T.floats()
  local out = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= '' then
      local buf = vim.api.nvim_win_get_buf(win)
      out[#out + 1] = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    end
  end
  return out
end

function T.close_floats()
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= '' then
      vim.api.nvim_win_close(win, true)
    end
  end
end

function T.statusline()
  return require('codellama').statusline()
end

function T.prompts()
  return T.input_prompts
end

function T.messages()
  return T.notes
end

--- Whether the server reports work in progress (e.g. the model still loading).
function T.busy()
  return next(require('codellama.progress').active) ~= nil
end
