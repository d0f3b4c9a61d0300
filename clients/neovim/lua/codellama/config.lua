--- Options of the Neovim client: defaults, merging and validation.
---
--- Client-side options are snake_case. Server settings live under `server` and use the server's
--- own camelCase names (see docs/architecture.md); they are sent as `initializationOptions` and
--- as the `codellama` section of `workspace/configuration`.

local M = {}

---@class codellama.KeymapOpts
---@field accept string|false Accept the whole suggestion; falls through to the previous mapping when nothing is shown.
---@field accept_word string|false Accept the next word of the suggestion.
---@field accept_line string|false Accept the suggestion up to the end of its current line.
---@field dismiss string|false Hide the suggestion until the next edit.
---@field trigger string|false Ask for a suggestion now, without waiting for the debounce.

---@class codellama.GhostOpts
---@field enabled boolean Request and draw ghost text while typing in insert mode.
---@field debounce_ms integer Quiet time after the last keystroke before a request is sent.
---@field hl_group string Highlight group of the ghost text (linked to Comment by default).

---@class codellama.Opts
---@field cmd string[]? Server command; nil keeps the default of lsp/codellama.lua.
---@field enable boolean Call vim.lsp.enable('codellama') in setup().
---@field filetypes string[]? Filetypes to attach to; nil keeps the default list.
---@field server table<string, any> Server settings (camelCase, e.g. model, adapter, maxNewTokens).
---@field ghost_text codellama.GhostOpts
---@field keymaps codellama.KeymapOpts
---@field progress 'echo'|'notify'|false How server progress (model load, dataset, training) is shown.

---@type codellama.Opts
M.defaults = {
  cmd = nil,
  enable = true,
  filetypes = nil,
  server = {},
  ghost_text = {
    enabled = true,
    debounce_ms = 100,
    hl_group = 'CodeLlamaGhostText',
  },
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-w>',
    accept_line = '<M-l>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',
  },
  progress = 'echo',
}

---@type codellama.Opts
M.options = vim.deepcopy(M.defaults)

local function is_key(v)
  return v == false or type(v) == 'string'
end

--- Merge user options over the defaults; an invalid option is reported and its default kept.
---@param user table?
---@return codellama.Opts
function M.merge(user)
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), user or {})
  local checks = {
    { 'cmd', merged.cmd, 'table', true },
    { 'enable', merged.enable, 'boolean' },
    { 'filetypes', merged.filetypes, 'table', true },
    { 'server', merged.server, 'table' },
    { 'ghost_text.enabled', merged.ghost_text.enabled, 'boolean' },
    { 'ghost_text.debounce_ms', merged.ghost_text.debounce_ms, 'number' },
    { 'ghost_text.hl_group', merged.ghost_text.hl_group, 'string' },
    {
      'progress',
      merged.progress,
      function(v)
        return v == false or v == 'echo' or v == 'notify'
      end,
      "'echo', 'notify' or false",
    },
  }
  for name, _ in pairs(M.defaults.keymaps) do
    table.insert(checks, { 'keymaps.' .. name, merged.keymaps[name], is_key, 'a key string or false' })
  end
  for _, c in ipairs(checks) do
    local ok, err = pcall(vim.validate, c[1], c[2], c[3], c[4])
    if not ok then
      vim.notify(
        ('codellama.setup: invalid option %s (%s); using the default'):format(c[1], err),
        vim.log.levels.WARN
      )
      local path = vim.split(c[1], '.', { plain = true })
      local dst, src = merged, M.defaults
      for i = 1, #path - 1 do
        dst, src = dst[path[i]], src[path[i]]
      end
      dst[path[#path]] = vim.deepcopy(src[path[#path]])
    end
  end
  return merged
end

return M
