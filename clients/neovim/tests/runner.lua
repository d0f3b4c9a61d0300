--- End-to-end tests of the Neovim client in a real Neovim against the real server.
---
--- Run by run.py as `nvim --headless -u NONE -l runner.lua`. This Neovim is only the driver:
--- it starts a second Neovim (`nvim --embed --headless`, the editor under test) with the plugin
--- and child.lua, types into it with nvim_input() (real key input, so insert mode, mappings and
--- autocommands behave as for a user) and reads probes from it over RPC.
--- Prints one line per test and `N passed, N failed`; exits 1 on any failure.

local cfg = vim.json.decode((assert(os.getenv('CODELLAMA_TEST_CONFIG'), 'CODELLAMA_TEST_CONFIG not set')))

local function log(fmt, ...)
  io.stdout:write(fmt:format(...) .. '\n')
  io.stdout:flush()
end

local child_stderr = {}
local chan = vim.fn.jobstart({ vim.v.progpath, '--embed', '--headless', '-u', 'NONE', '-i', 'NONE', '-n' }, {
  rpc = true,
  cwd = cfg.workspace,
  on_stderr = function(_, data)
    for _, l in ipairs(data) do
      if l ~= '' then
        child_stderr[#child_stderr + 1] = l
      end
    end
  end,
})
assert(chan > 0, 'could not start the Neovim under test')

local function rpc(method, ...)
  return vim.rpcrequest(chan, method, ...)
end

--- Call T.<name>(...) in the editor under test.
local function probe(name, ...)
  local r = rpc('nvim_exec_lua', ('return T.%s(...)'):format(name), { ... })
  if r == vim.NIL then
    return nil
  end
  return r
end

local function type_keys(keys)
  rpc('nvim_input', keys)
end

local function wait_for(what, timeout_ms, fn)
  local value
  local ok = vim.wait(timeout_ms, function()
    value = fn()
    return value ~= nil and value ~= false
  end, 50)
  if not ok then
    error(('timed out after %d ms waiting for %s'):format(timeout_ms, what), 0)
  end
  return value
end

--- Keys that insert `text` literally.
local function literal(text)
  return (text:gsub('<', '<lt>'):gsub('\n', '<CR>'))
end

local results = { passed = 0, failed = 0 }
local failures = {}

local function test(name, fn)
  local t0 = vim.uv.hrtime()
  local ok, err = xpcall(fn, function(e)
    return type(e) == 'string' and e or vim.inspect(e)
  end)
  local ms = (vim.uv.hrtime() - t0) / 1e6
  if ok then
    results.passed = results.passed + 1
    log('ok   %-58s %7.0f ms', name, ms)
  else
    results.failed = results.failed + 1
    failures[#failures + 1] = name
    log('FAIL %-58s %7.0f ms\n     %s', name, ms, tostring(err):gsub('\n', '\n     '))
  end
end

local function check(cond, fmt, ...)
  if not cond then
    error(fmt:format(...), 0)
  end
end

-- Characters a user could type that mean nothing special in insert mode.
local function typeable(c)
  return c ~= nil and c:match('^[%w%p ]$') ~= nil
end

-- What the driver types when the server has nothing to suggest at the cursor: short, natural
-- beginnings of statements (a real model often ends a finished line with nothing).
local FILLER = { '<CR>', 'total = ', '<CR>', 'for v in ', '<CR>', 'return ', '<CR>', 'x', 'y' }

--- Wait until ghost text is shown; while the server answers with nothing, keep typing a little
--- (what a user does). Returns the suggestion and how many extra keys it took.
local function await_ghost(timeout_ms, want_typeable)
  local deadline = vim.uv.now() + timeout_ms
  local extra, last_key = 0, vim.uv.now()
  local stats0 = probe('stats')
  while vim.uv.now() < deadline do
    local g = probe('ghost')
    if g and g.text ~= '' and (not want_typeable or typeable(g.text:sub(1, 1))) then
      return g, extra
    end
    local stats = probe('stats')
    local answered = stats.responses > stats0.responses or stats.stale > stats0.stale
    -- While the server is busy (loading the model) an empty answer means "not yet": the plugin
    -- asks again when the work ends. Otherwise type one more key, like a user would.
    if (g and want_typeable) or (answered and not probe('busy') and vim.uv.now() - last_key > 1500) then
      -- Answered but nothing usable here: type one more character and let it ask again.
      extra = extra + 1
      local keys = FILLER[(extra - 1) % #FILLER + 1]
      keys = keys == '<CR>' and keys or literal(keys)
      type_keys(g and '<C-]>' .. keys or keys)
      stats0, last_key = probe('stats'), vim.uv.now()
    end
    vim.wait(100)
  end
  error(('no ghost text within %d ms (stats %s)'):format(timeout_ms, vim.inspect(probe('stats'))), 0)
end

local function expected_after_insert(st, text)
  local lines = vim.deepcopy(st.lines)
  local line = lines[st.row + 1]
  local new = vim.split(line:sub(1, st.col) .. text .. line:sub(st.col + 1), '\n', { plain = true })
  table.remove(lines, st.row + 1)
  for i = #new, 1, -1 do
    table.insert(lines, st.row + 1, new[i])
  end
  return lines
end

local function same(a, b)
  return vim.deep_equal(a, b)
end

local function wait_lines(expected, what)
  local ok = vim.wait(5000, function()
    return same(probe('state').lines, expected)
  end, 25)
  check(
    ok,
    '%s: buffer is\n%s\nexpected\n%s',
    what,
    table.concat(probe('state').lines, '\n'),
    table.concat(expected, '\n')
  )
end

-- Pure Lua units, in this (driver) Neovim -----------------------------------------------------
vim.opt.runtimepath:prepend(cfg.plugin_dir)

test('unit: invalid options are reported and replaced by defaults', function()
  local warned = {}
  local notify = vim.notify
  vim.notify = function(msg)
    warned[#warned + 1] = msg
  end
  local ok, o = pcall(require('codellama.config').merge, {
    ghost_text = { debounce_ms = 'soon' },
    keymaps = { accept = 1, dismiss = false },
    progress = 'loud',
    server = { model = 'bundled:smollm2-135m' },
  })
  vim.notify = notify
  check(ok, 'merge raised: %s', tostring(o))
  check(o.ghost_text.debounce_ms == 100, 'debounce_ms kept the invalid value')
  check(o.keymaps.accept == '<Tab>' and o.keymaps.dismiss == false, 'keymaps: %s', vim.inspect(o.keymaps))
  check(o.progress == 'echo', 'progress kept the invalid value')
  check(o.server.model == 'bundled:smollm2-135m', 'valid server setting lost')
  check(#warned == 3, 'expected 3 warnings, got %s', vim.inspect(warned))
end)

test('unit: one debounce, in the plugin (the server gets debounceMs = 0)', function()
  local codellama = require('codellama')
  require('codellama.config').options = require('codellama.config').merge({})
  local sent = codellama.server_settings({ model = 'm', debounceMs = 180 }, { server = { debounceMs = 180 } })
  check(sent.debounceMs == 0 and sent.model == 'm', 'sent %s', vim.inspect(sent))
  local o = require('codellama.config').options
  check(o.ghost_text.debounce_ms == 180, 'server.debounceMs did not become the plugin delay: %s', o.ghost_text.debounce_ms)
  require('codellama.config').options = require('codellama.config').merge({ ghost_text = { debounce_ms = 40 } })
  sent = codellama.server_settings({ debounceMs = 180 }, { ghost_text = { debounce_ms = 40 } })
  o = require('codellama.config').options
  check(sent.debounceMs == 0 and o.ghost_text.debounce_ms == 40, 'explicit ghost_text.debounce_ms lost: %s', o.ghost_text.debounce_ms)
  local default = dofile(cfg.plugin_dir .. '/lsp/codellama.lua')
  check(default.init_options.debounceMs == 0 and default.settings.codellama.debounceMs == 0, 'lsp/codellama.lua: %s', vim.inspect(default.init_options))
  check(default.cmd_env.PYTHONSAFEPATH == '1', 'lsp/codellama.lua must set PYTHONSAFEPATH')
  require('codellama.config').options = vim.deepcopy(require('codellama.config').defaults)
end)

test('unit: command arguments key=value', function()
  local c = require('codellama.commands')
  check(c.parse_kv({}) == nil, 'no arguments must send none')
  local got = c.parse_kv({ 'maxSteps=5', 'maxMinutes=1.5', 'resume=true', 'name=a=b' })
  check(vim.deep_equal(got, { maxSteps = 5, maxMinutes = 1.5, resume = true, name = 'a=b' }), vim.inspect(got))
  check(not pcall(c.parse_kv, { 'oops' }), 'a bare word must be refused')
end)

test('unit: status results render as an outline', function()
  local lines = require('codellama.commands').format_result({
    settings = { device = 'cpu' },
    model = { state = 'ready', adapter = vim.NIL },
    tags = { 'a', 'b' },
  })
  local want = { 'model:', '  adapter: -', '  state: ready', 'settings:', '  device: cpu', 'tags: a, b' }
  check(vim.deep_equal(lines, want), vim.inspect(lines))
end)

-- ---------------------------------------------------------------------------------------------
rpc('nvim_exec_lua', 'dofile(...)', { cfg.plugin_dir .. '/tests/child.lua' })
rpc('nvim_command', 'edit ' .. vim.fn.fnameescape(cfg.file))
local model_timeout = cfg.model_timeout_ms or 240000
-- Later suggestions: one completion, but the bundled model on a busy 2-core CI box can take ~40 s.
local ghost_timeout = cfg.ghost_timeout_ms or 60000

test('client attaches and the server offers inlineCompletion', function()
  local c = wait_for('the codellama client to attach', 60000, function()
    local c = probe('client')
    return c and c.initialized and c
  end)
  check(c.inline, 'server capabilities lack inlineCompletionProvider')
  local cmds = probe('buf_commands')
  for _, name in ipairs({
    'CodeLlamaStatus',
    'CodeLlamaFinetune',
    'CodeLlamaCancel',
    'CodeLlamaEvaluate',
    'CodeLlamaUseAdapter',
    'CodeLlamaRebuildDataset',
    'CodeLlamaRefactor',
  }) do
    check(vim.list_contains(cmds, name), 'buffer command %s missing (have %s)', name, table.concat(cmds, ' '))
  end
end)

local ghost_ok = false
test('ghost text appears after typing (extmark with the text)', function()
  type_keys('G$o' .. literal('def add(a, b):\n'))
  local g, extra = await_ghost(model_timeout)
  local drawn = wait_for('the ghost extmark', 2000, function()
    local d = probe('drawn')
    return #d > 0 and d
  end)
  local ts = rpc('nvim_get_option_value', 'tabstop', {})
  local want = vim.tbl_map(function(l)
    return vim.fn.strtrans((l:gsub('\t', string.rep(' ', ts))))
  end, vim.split(g.text, '\n', { plain = true }))
  check(#drawn == 1, 'expected one ghost extmark, got %d', #drawn)
  check(same(drawn[1].lines, want), 'drawn %s ~= suggestion %s', vim.inspect(drawn[1].lines), vim.inspect(want))
  check(drawn[1].row == g.row and drawn[1].col == g.col, 'extmark not at the cursor')
  check(drawn[1].lines[1] ~= '' or #drawn[1].lines > 1, 'empty ghost text')
  ghost_ok = true
  log('     suggestion %s after %d extra key(s)', vim.inspect(g.text), extra)
end)

test('<Tab> accepts: the suggestion is inserted into the buffer', function()
  check(ghost_ok, 'needs the ghost text test')
  local g = await_ghost(ghost_timeout)
  local st = probe('state')
  local expected = expected_after_insert(st, g.text)
  type_keys('<Tab>')
  wait_lines(expected, 'after <Tab>')
  local after = probe('state')
  local last = vim.split(g.text, '\n', { plain = true })
  local want_col = (#last == 1 and st.col or 0) + #last[#last]
  check(after.row == st.row + #last - 1 and after.col == want_col, 'cursor not at the end of the insertion')
  check(after.mode:sub(1, 1) == 'i', 'left insert mode (%s)', after.mode)
end)

test('typing the start of the suggestion keeps the rest (no new request)', function()
  check(ghost_ok, 'needs the ghost text test')
  local g = await_ghost(ghost_timeout, true)
  local before = probe('stats')
  type_keys(literal(g.text:sub(1, 1)))
  local g2 = wait_for('the typed-through suggestion', 3000, function()
    local st = probe('state')
    return st.col == g.col + 1 and probe('ghost') or nil
  end)
  check(g2.text == g.text:sub(2), 'remaining %q, expected %q', g2.text, g.text:sub(2))
  check(probe('stats').requests == before.requests, 'a new request was sent for a typed-through key')
end)

test('accept word inserts the next word, the rest stays shown', function()
  check(ghost_ok, 'needs the ghost text test')
  local g = await_ghost(ghost_timeout)
  local word = g.text:match('^%s*[%w_]+') or g.text:match('^%s*[^%w_%s]+') or g.text:match('^%s+') or g.text
  local st = probe('state')
  type_keys('<M-w>')
  wait_lines(expected_after_insert(st, word), 'after accept word')
  local rest = g.text:sub(#word + 1)
  if rest ~= '' then
    local g2 = probe('ghost')
    check(g2 and g2.text == rest, 'remaining ghost %s, expected %q', vim.inspect(g2), rest)
    check(#probe('drawn') == 1, 'the rest is not drawn')
  end
end)

test('accept line inserts up to the end of the line', function()
  check(ghost_ok, 'needs the ghost text test')
  local g = await_ghost(ghost_timeout)
  local line = g.text:match('^\n*[^\n]*\n?')
  local st = probe('state')
  type_keys('<M-l>')
  wait_lines(expected_after_insert(st, line), 'after accept line')
end)

test('<C-]> dismisses the suggestion', function()
  check(ghost_ok, 'needs the ghost text test')
  await_ghost(ghost_timeout)
  type_keys('<C-]>')
  wait_for('the ghost text to go', 2000, function()
    return probe('ghost') == nil and #probe('drawn') == 0
  end)
end)

test("<Tab> falls through to the user's own <Tab> mapping when nothing is shown", function()
  local st = probe('state')
  check(probe('ghost') == nil, 'a suggestion is still shown')
  local before = rpc('nvim_exec_lua', 'return vim.g.user_tab or 0', {})
  type_keys('<Tab>')
  wait_lines(expected_after_insert(st, '\t'), 'after <Tab> without a suggestion')
  check(rpc('nvim_exec_lua', 'return vim.g.user_tab or 0', {}) == before + 1, "the user's <Tab> mapping did not run")
end)

test('in the middle of a line: drawn before the rest of the line, accepted into it', function()
  check(ghost_ok, 'needs the ghost text test')
  type_keys('<CR>' .. literal('print()') .. '<Left>')
  local g = await_ghost(ghost_timeout)
  local st = probe('state')
  local line = st.lines[st.row + 1]
  local suffix = line:sub(st.col + 1)
  check(suffix ~= '', 'the cursor is not inside the line: %q', line)
  local ts = rpc('nvim_get_option_value', 'tabstop', {})
  local shown = vim.tbl_map(function(l)
    return vim.fn.strtrans((l:gsub('\t', string.rep(' ', ts))))
  end, vim.split(g.text, '\n', { plain = true }))
  local want = vim.deepcopy(shown)
  if #want == 1 then
    want[1] = want[1] .. suffix
  else
    want[1] = want[1] .. string.rep(' ', vim.fn.strdisplaywidth(suffix) - vim.fn.strdisplaywidth(want[1]))
    want[#want] = want[#want] .. suffix
  end
  local drawn = probe('drawn')
  check(#drawn == 1 and same(drawn[1].lines, want), 'drawn %s, expected %s', vim.inspect(drawn), vim.inspect(want))
  type_keys('<Tab>')
  wait_lines(expected_after_insert(st, g.text), 'after <Tab> inside a line')
end)

test('a newer request cancels the one in flight ($/cancelRequest)', function()
  local before = probe('stats')
  type_keys('<M-\\><M-\\>')
  wait_for('two requests and one cancel', 5000, function()
    local s = probe('stats')
    return s.requests >= before.requests + 2 and s.cancelled >= before.cancelled + 1
  end)
  -- The surviving request still produces a suggestion.
  await_ghost(ghost_timeout)
  type_keys('<Esc>')
  wait_for('normal mode and no ghost', 2000, function()
    return probe('state').mode == 'n' and probe('ghost') == nil
  end)
end)

test(':CodeLlamaStatus shows the server status', function()
  rpc('nvim_command', 'CodeLlamaStatus')
  local last = wait_for('the status answer', 20000, function()
    return probe('last', 'status')
  end)
  check(last.err == vim.NIL, 'status failed: %s', tostring(last.err))
  local floats = wait_for('the status window', 2000, function()
    local f = probe('floats')
    return #f > 0 and f
  end)
  local text = table.concat(floats[1], '\n')
  check(text:lower():find('model', 1, true), 'status window does not mention the model:\n%s', text)
  log('     %s', text:gsub('\n', '\n     '))
  probe('close_floats')
end)

test('set_server_settings() changes a server setting at runtime', function()
  rpc('nvim_exec_lua', "require('codellama').set_server_settings({ maxNewTokens = 17 })", {})
  wait_for('the server to report maxNewTokens = 17', 20000, function()
    rpc('nvim_exec_lua', "require('codellama.commands').last.status = nil", {})
    rpc('nvim_exec_lua', "require('codellama').status(function() end)", {})
    local last = wait_for('a status answer', 10000, function()
      return probe('last', 'status')
    end)
    return type(last.result) == 'table' and last.result.settings and last.result.settings.maxNewTokens == 17
  end)
end)

test(':CodeLlamaRebuildDataset rebuilds the dataset', function()
  rpc('nvim_command', 'CodeLlamaRebuildDataset')
  local last = wait_for('the rebuildDataset answer', 120000, function()
    return probe('last', 'rebuild_dataset')
  end)
  check(last.err == vim.NIL, 'rebuildDataset failed: %s', tostring(last.err))
end)

--- The progress events seen after event number n0 (the client's history keeps only the newest
--- 500, so positions in it shift: count by `seq`, never by index).
local function progress_since(n0)
  local out = {}
  for _, e in ipairs(probe('progress')) do
    if e.seq > n0 then
      out[#out + 1] = e
    end
  end
  return out
end

--- The first progress event after event number n0 (kind `kind`) whose title mentions fine-tuning.
local function finetune_progress(n0, kind)
  for _, e in ipairs(progress_since(n0)) do
    local t = e.title:lower()
    if e.kind == kind and (t:find('tun') or t:find('train')) then
      return e
    end
  end
end

test(':CodeLlamaCancel stops a running fine-tune', function()
  local n0 = probe('progress_seen')
  rpc('nvim_command', 'CodeLlamaFinetune maxSteps=500')
  wait_for('fine-tuning to begin', 120000, function()
    return finetune_progress(n0, 'begin')
  end)
  rpc('nvim_command', 'CodeLlamaCancel')
  local last = wait_for('the cancel answer', 20000, function()
    return probe('last', 'cancel')
  end)
  check(last.err == vim.NIL, 'cancel failed: %s', tostring(last.err))
  check(type(last.result) == 'table' and last.result.cancelled == true, 'cancel answer %s', vim.inspect(last.result))
  local done = wait_for('the cancelled run to end', 120000, function()
    return finetune_progress(n0, 'end')
  end)
  log('     end: %s', tostring(done.message))
  check(tostring(done.message):lower():find('cancel'), 'run did not end cancelled: %s', tostring(done.message))
end)

test(':CodeLlamaFinetune reports progress and its result', function()
  local n0 = probe('progress_seen')
  rpc('nvim_command', 'CodeLlamaFinetune ' .. (cfg.finetune_args or 'maxSteps=2'))
  local begin = wait_for('a fine-tuning progress report', 120000, function()
    local e = finetune_progress(n0, 'begin')
    if e then
      return e
    end
    -- A server that refuses fine-tuning must say so to the user.
    local last = probe('last', 'finetune')
    if last and last.err ~= vim.NIL then
      error('finetune failed: ' .. tostring(last.err), 0)
    end
  end)
  log('     progress: %s', begin.title)
  local last = wait_for('the finetune result', cfg.finetune_timeout_ms or 600000, function()
    return probe('last', 'finetune')
  end)
  check(last.err == vim.NIL, 'finetune failed: %s', tostring(last.err))
  log('     result %s', vim.inspect(last.result, { newline = ' ', indent = '' }))
  local done = wait_for('the fine-tuning progress to end', cfg.finetune_timeout_ms or 600000, function()
    for _, e in ipairs(progress_since(n0)) do
      if e.kind == 'end' and e.title == begin.title then
        return e
      end
    end
  end)
  local reports = {}
  for _, e in ipairs(progress_since(n0)) do
    if e.kind == 'report' and e.title == begin.title then
      reports[#reports + 1] = e.message or ''
    end
  end
  log('     %d reports, e.g. %s', #reports, vim.inspect(reports[math.min(#reports, 3)]))
  log('     end: %s', tostring(done.message))
  check(#reports > 0, 'no progress between begin and end')
  check(not tostring(done.message):lower():find('fail'), 'fine-tuning failed: %s', tostring(done.message))
end)

test(':CodeLlamaEvaluate reports base vs adapter metrics', function()
  rpc('nvim_command', 'CodeLlamaEvaluate maxHoles=4')
  local last = wait_for('the evaluate answer', cfg.finetune_timeout_ms or 600000, function()
    return probe('last', 'evaluate')
  end)
  check(last.err == vim.NIL, 'evaluate failed: %s', tostring(last.err))
  check(type(last.result) == 'table' and last.result.base ~= nil, 'no base metrics in %s', vim.inspect(last.result))
  log('     %s', vim.inspect(last.result.base, { newline = ' ', indent = '' }):sub(1, 200))
end)

test(':CodeLlamaUseAdapter none unloads the adapter', function()
  rpc('nvim_command', 'CodeLlamaUseAdapter none')
  local last = wait_for('the useAdapter answer', 120000, function()
    return probe('last', 'use_adapter')
  end)
  check(last.err == vim.NIL, 'useAdapter failed: %s', tostring(last.err))
end)

test('"Refactor with instruction…" asks for the instruction and runs it', function()
  rpc('nvim_exec_lua', 'T.input_answer = ...', { 'add a docstring' })
  rpc('nvim_command', 'normal! gg')
  rpc(
    'nvim_exec_lua',
    [[vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title:lower():find('instruction') ~= nil end })]],
    {}
  )
  wait_for('the instruction prompt', 20000, function()
    return #probe('prompts') > 0 or nil
  end)
  local last = wait_for('the refactor answer', model_timeout, function()
    return probe('last', 'refactor')
  end)
  -- A tiny random model cannot write valid code: the server must refuse, and the user must see why.
  local why = last.err ~= vim.NIL and tostring(last.err)
    or (type(last.result) == 'table' and last.result.applied == false and last.result.message)
  if why then
    local shown = rpc('nvim_exec2', 'messages', { output = true }).output
    for _, n in ipairs(probe('messages')) do
      shown = shown .. '\n' .. n.msg
    end
    check(shown:find(why, 1, true) ~= nil, 'refactor refusal %q was not shown to the user', why)
  end
  log('     answer: %s', last.err ~= vim.NIL and tostring(last.err) or vim.inspect(last.result, { newline = ' ', indent = '' }))
end)

test(':checkhealth codellama reports the server', function()
  rpc('nvim_command', 'checkhealth codellama')
  local lines = rpc('nvim_buf_get_lines', 0, 0, -1, false)
  local text = table.concat(lines, '\n')
  check(text:find('server offers textDocument/inlineCompletion', 1, true), 'checkhealth output:\n%s', text)
  check(not text:find('ERROR', 1, true), 'checkhealth reports an error:\n%s', text)
end)

pcall(vim.rpcnotify, chan, 'nvim_command', 'qa!')
vim.wait(500)
pcall(vim.fn.jobstop, chan)

if results.failed > 0 and #child_stderr > 0 then
  log('--- stderr of the Neovim under test ---\n%s', table.concat(child_stderr, '\n'))
end
log('%d passed, %d failed', results.passed, results.failed)
os.exit(results.failed > 0 and 1 or 0)
