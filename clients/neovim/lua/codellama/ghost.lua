--- Ghost text: requests textDocument/inlineCompletion as the user types and draws the answer
--- with extmarks (first line inline with virt_text, the rest with virt_lines).
---
--- Neovim 0.11 has no vim.lsp.inline_completion, so this module does the client half itself:
--- debounce, cancel the request in flight ($/cancelRequest) when a newer one is sent, drop
--- stale answers, keep the suggestion while the user types through it, accept all / a word /
--- a line, dismiss. No model logic lives here.

local api = vim.api

local function resolve_bufnr(bufnr)
  return (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
end

local M = {}

M.ns = api.nvim_create_namespace('codellama.ghost')

local METHOD = 'textDocument/inlineCompletion'
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2
local REQUEST_CANCELLED, CONTENT_MODIFIED, SERVER_CANCELLED = -32800, -32801, -32802

---@class codellama.Suggestion
---@field row integer 0-based row of the cursor the suggestion starts at
---@field col integer 0-based byte column of that cursor
---@field text string what is still to be inserted at (row, col)
---@field replace_end integer byte column on `row` up to which existing text is replaced on accept
---@field item table the server's InlineCompletionItem

---@class codellama.GhostState
---@field timer uv.uv_timer_t?
---@field client_id integer?
---@field request_id integer?
---@field seq integer sequence number of the newest request
---@field suggestion codellama.Suggestion?
---@field extmark integer?
---@field seen_tick integer changedtick last handled
---@field seen_cursor integer[] cursor last handled
---@field own_edit boolean the next change comes from an accept, not from the user

---@type table<integer, codellama.GhostState>
local states = {}

--- Counters for :checkhealth and the tests (user-visible behaviour: what was asked, what was shown).
M.stats = { requests = 0, cancelled = 0, responses = 0, shown = 0, stale = 0, errors = 0 }
---@type string?
M.last_error = nil

local function opts()
  return require('codellama.config').options.ghost_text
end

local function state(bufnr)
  local s = states[bufnr]
  if not s then
    s = { seq = 0, seen_tick = -1, seen_cursor = { 0, 0 }, own_edit = false }
    states[bufnr] = s
  end
  return s
end

---@return vim.lsp.Client?
local function get_client(bufnr)
  for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr, name = 'codellama' })) do
    if client:supports_method(METHOD, bufnr) then
      return client
    end
  end
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return { pos[1] - 1, pos[2] }
end

local function stop_timer(s)
  if s.timer then
    s.timer:stop()
    if not s.timer:is_closing() then
      s.timer:close()
    end
    s.timer = nil
  end
end

local function cancel_request(s)
  if s.request_id and s.client_id then
    local client = vim.lsp.get_client_by_id(s.client_id)
    if client then
      client:cancel_request(s.request_id)
      M.stats.cancelled = M.stats.cancelled + 1
    end
  end
  s.request_id = nil
end

local function undraw(bufnr, s)
  if s.extmark then
    pcall(api.nvim_buf_del_extmark, bufnr, M.ns, s.extmark)
    s.extmark = nil
  end
end

local function display_line(line)
  -- Tabs inside virtual text would be drawn as a single cell; expand them like the buffer does.
  -- Other control characters are shown the way the buffer would show them (^X).
  local ts = vim.bo.tabstop > 0 and vim.bo.tabstop or 8
  return vim.fn.strtrans((line:gsub('\t', string.rep(' ', ts))))
end

--- Draw like copilot.vim: an overlay starting at the cursor's screen column (so the cursor stays
--- where the user types; inline virtual text at the cursor would push it to the end), showing
--- the first line of the suggestion followed by the rest of the real line, and the other lines
--- of the suggestion as virtual lines, the last one followed by the rest of the real line.
local function draw(bufnr, s)
  undraw(bufnr, s)
  local sug = s.suggestion
  if not sug or sug.text == '' then
    return
  end
  local hl = opts().hl_group
  local lines = vim.split(sug.text, '\n', { plain = true })
  local line = api.nvim_buf_get_lines(bufnr, sug.row, sug.row + 1, false)[1] or ''
  local after = line:sub(sug.col + 1)
  local suffix = display_line(line:sub(sug.replace_end + 1))
  local first = { { display_line(lines[1]), hl } }
  if #lines == 1 and suffix ~= '' then
    first[2] = { suffix, 'Normal' }
  end
  local width = 0
  for _, chunk in ipairs(first) do
    width = width + vim.fn.strdisplaywidth(chunk[1])
  end
  local pad = vim.fn.strdisplaywidth(display_line(after)) - width
  if pad > 0 then
    first[#first + 1] = { string.rep(' ', pad), 'Normal' }
  end
  local extmark = { hl_mode = 'combine', right_gravity = false }
  if width > 0 or pad > 0 then
    local leftcol = vim.fn.winsaveview().leftcol
    extmark.virt_text = first
    extmark.virt_text_pos = 'overlay'
    -- Screen column where the cursor's cell starts: where the character before it ends.
    local col = sug.col == 0 and 0 or vim.fn.virtcol({ sug.row + 1, sug.col })
    extmark.virt_text_win_col = col - leftcol
  end
  if #lines > 1 then
    local virt_lines = {}
    for i = 2, #lines do
      virt_lines[#virt_lines + 1] = { { display_line(lines[i]), hl } }
    end
    if suffix ~= '' then
      table.insert(virt_lines[#virt_lines], { suffix, 'Normal' })
    end
    extmark.virt_lines = virt_lines
  end
  local ok, id = pcall(api.nvim_buf_set_extmark, bufnr, M.ns, sug.row, sug.col, extmark)
  if ok then
    s.extmark = id
  end
end

--- Hide the suggestion and forget it (a pending request stays in flight unless `cancel`).
---@param bufnr integer?
---@param cancel boolean? also stop the timer and cancel the request in flight
function M.clear(bufnr, cancel)
  bufnr = resolve_bufnr(bufnr)
  local s = states[bufnr]
  if not s then
    return
  end
  s.suggestion = nil
  undraw(bufnr, s)
  if cancel then
    stop_timer(s)
    cancel_request(s)
    s.seq = s.seq + 1 -- any answer still on its way is now stale
  end
end

---@param line string
---@param encoding string
---@param pos lsp.Position
local function byte_col(line, pos, encoding)
  local ok, col = pcall(vim.str_byteindex, line, encoding, pos.character, false)
  return ok and col or #line
end

--- Turn an InlineCompletionItem into what is left to insert at the cursor, or nil when it
--- cannot be shown as ghost text here (a replace range that starts on another line, or text
--- that does not extend what is already typed).
---@return codellama.Suggestion?
local function to_suggestion(bufnr, item, row, col, encoding)
  local insert = item.insertText
  if type(insert) == 'table' then
    insert = insert.value -- a snippet StringValue: shown and inserted as plain text
  end
  if type(insert) ~= 'string' or insert == '' then
    return nil
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local text, replace_end = insert, col
  if item.range then
    local r = item.range
    if r.start.line ~= row or r['end'].line ~= row then
      return nil
    end
    local start = byte_col(line, r.start, encoding)
    replace_end = math.max(byte_col(line, r['end'], encoding), col)
    if start > col then
      return nil
    end
    local typed = line:sub(start + 1, col)
    if insert:sub(1, #typed) ~= typed then
      return nil
    end
    text = insert:sub(#typed + 1)
  end
  if text == '' then
    return nil
  end
  return { row = row, col = col, text = text, replace_end = replace_end, item = item }
end

local function on_response(bufnr, seq, err, result, ctx)
  local s = states[bufnr]
  if not s or seq ~= s.seq then
    M.stats.stale = M.stats.stale + 1
    return
  end
  s.request_id = nil
  if err then
    if err.code ~= REQUEST_CANCELLED and err.code ~= CONTENT_MODIFIED and err.code ~= SERVER_CANCELLED then
      M.stats.errors = M.stats.errors + 1
      M.last_error = err.message
      vim.lsp.log.warn('codellama inlineCompletion', err)
    end
    return
  end
  M.stats.responses = M.stats.responses + 1
  if not api.nvim_buf_is_valid(bufnr) or bufnr ~= api.nvim_get_current_buf() or not in_insert_mode() then
    return
  end
  -- The answer is for the text and cursor of the request; anything typed since makes it stale.
  local row, col = ctx.params.position.line, s.req_col
  local now = cursor()
  if api.nvim_buf_get_changedtick(bufnr) ~= s.req_tick or now[1] ~= row or now[2] ~= col then
    M.stats.stale = M.stats.stale + 1
    return
  end
  local items = result and (result.items or result) or {}
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  for _, item in ipairs(items) do
    local sug = to_suggestion(bufnr, item, row, col, encoding)
    if sug then
      s.suggestion = sug
      M.stats.shown = M.stats.shown + 1
      draw(bufnr, s)
      return
    end
  end
end

--- Send an inlineCompletion request for the cursor now, cancelling the one in flight.
---@param bufnr integer?
---@param invoked boolean? the user asked explicitly (triggerKind Invoked)
function M.request(bufnr, invoked)
  bufnr = resolve_bufnr(bufnr)
  local s = state(bufnr)
  stop_timer(s)
  local client = get_client(bufnr)
  if not client or bufnr ~= api.nvim_get_current_buf() then
    return
  end
  cancel_request(s)
  s.seq = s.seq + 1
  local seq = s.seq
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@diagnostic disable-next-line: inject-field
  params.context = { triggerKind = invoked and TRIGGER_INVOKED or TRIGGER_AUTOMATIC }
  s.req_tick = api.nvim_buf_get_changedtick(bufnr)
  s.req_col = cursor()[2]
  local ok, id = client:request(METHOD, params, function(err, result, ctx)
    on_response(bufnr, seq, err, result, ctx)
  end, bufnr)
  if ok then
    M.stats.requests = M.stats.requests + 1
    s.client_id, s.request_id = client.id, id
  end
end

--- Request after the debounce delay; a newer call restarts the delay.
---@param bufnr integer?
function M.schedule(bufnr)
  bufnr = resolve_bufnr(bufnr)
  if not opts().enabled or vim.b[bufnr].codellama_disabled then
    return
  end
  local s = state(bufnr)
  stop_timer(s)
  local timer = assert(vim.uv.new_timer())
  s.timer = timer
  timer:start(
    math.max(0, opts().debounce_ms),
    0,
    vim.schedule_wrap(function()
      if s.timer ~= timer then
        return
      end
      stop_timer(s)
      if api.nvim_buf_is_valid(bufnr) and bufnr == api.nvim_get_current_buf() and in_insert_mode() then
        M.request(bufnr, false)
      end
    end)
  )
end

--- Typed-through: the user typed exactly the start of the suggestion, so keep the rest shown
--- instead of asking the server again.
local function typed_through(bufnr, s, pos)
  local sug = s.suggestion
  if not sug or pos[1] ~= sug.row or pos[2] <= sug.col then
    return false
  end
  local n = pos[2] - sug.col
  local line = api.nvim_buf_get_lines(bufnr, sug.row, sug.row + 1, false)[1] or ''
  local typed = line:sub(sug.col + 1, pos[2])
  if typed:find('\n', 1, true) or sug.text:sub(1, n) ~= typed then
    return false
  end
  sug.text = sug.text:sub(n + 1)
  sug.col = pos[2]
  sug.replace_end = sug.replace_end + n
  return sug.text ~= ''
end

--- Text or cursor changed in insert mode (TextChangedI/TextChangedP/CursorMovedI).
---@param bufnr integer
function M.on_change(bufnr)
  local s = state(bufnr)
  local tick, pos = api.nvim_buf_get_changedtick(bufnr), cursor()
  if tick == s.seen_tick and pos[1] == s.seen_cursor[1] and pos[2] == s.seen_cursor[2] then
    return
  end
  s.seen_tick, s.seen_cursor = tick, pos
  if s.own_edit then
    -- Our own accept: the suggestion state was updated by accept() already.
    s.own_edit = false
    if s.suggestion then
      draw(bufnr, s)
      return
    end
  elseif typed_through(bufnr, s, pos) then
    draw(bufnr, s)
    return
  end
  M.clear(bufnr, true)
  M.schedule(bufnr)
end

--- The suggestion shown in `bufnr`, or nil.
---@param bufnr integer?
---@return codellama.Suggestion?
function M.get(bufnr)
  local s = states[resolve_bufnr(bufnr)]
  return s and s.suggestion or nil
end

---@param bufnr integer?
function M.is_visible(bufnr)
  local sug = M.get(bufnr)
  return sug ~= nil and sug.text ~= ''
end

local function chunk_of(text, what)
  if what == 'word' then
    return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or text
  elseif what == 'line' then
    return text:match('^\n*[^\n]*\n?')
  end
  return text
end

--- Insert all / the next word / the rest of the line of the suggestion at the cursor.
---@param what 'all'|'word'|'line'|nil
---@param bufnr integer?
---@return boolean accepted
function M.accept(what, bufnr)
  bufnr = resolve_bufnr(bufnr)
  local s = states[bufnr]
  local sug = s and s.suggestion
  if not s or not sug or sug.text == '' then
    return false
  end
  local chunk = chunk_of(sug.text, what or 'all')
  local rest = sug.text:sub(#chunk + 1)
  local lines = vim.split(chunk, '\n', { plain = true })
  -- Only the final accept replaces the range the server asked to replace (e.g. an auto-closed
  -- bracket the completion already contains).
  local end_col = rest == '' and sug.replace_end or sug.col
  stop_timer(s)
  cancel_request(s)
  s.seq = s.seq + 1
  undraw(bufnr, s)
  s.own_edit = true
  api.nvim_buf_set_text(bufnr, sug.row, sug.col, sug.row, end_col, lines)
  local new_row = sug.row + #lines - 1
  local new_col = (#lines == 1 and sug.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  if rest == '' then
    s.suggestion = nil
  else
    s.suggestion = {
      row = new_row,
      col = new_col,
      text = rest,
      replace_end = new_col + (sug.replace_end - sug.col),
      item = sug.item,
    }
    draw(bufnr, s)
  end
  return true
end

--- Hide the suggestion until the next edit.
---@param bufnr integer?
function M.dismiss(bufnr)
  M.clear(bufnr, true)
end

--- Forget all state of a buffer (detach, wipeout).
---@param bufnr integer
function M.detach(bufnr)
  M.clear(bufnr, true)
  states[bufnr] = nil
end

return M
