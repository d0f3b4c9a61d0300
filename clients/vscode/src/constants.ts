/**
 * Names shared with the server (mirrored from docs/architecture.md and lsp_server/settings.py)
 * and the extension's own command ids. Nothing here imports `vscode`, so unit tests load it.
 */

/** Settings section: `workspace/configuration` section and the `codellama.*` settings prefix. */
export const SECTION = 'codellama';

export const EXTENSION_ID = 'codellama-lsp.codellama-lsp';
export const SERVER_NAME = 'CodeLlama';

/** `workspace/executeCommand` commands implemented by the server. */
export const ServerCommand = {
    status: 'codellama.status',
    finetune: 'codellama.finetune',
    cancelFinetune: 'codellama.cancelFinetune',
    evaluate: 'codellama.evaluate',
    useAdapter: 'codellama.useAdapter',
    rebuildDataset: 'codellama.rebuildDataset',
    refactor: 'codellama.refactor',
} as const;
export type ServerCommandId = (typeof ServerCommand)[keyof typeof ServerCommand];

/**
 * Palette commands contributed by the extension. They differ from the server's ids because the
 * language client registers the server's ids itself (from `executeCommandProvider`), and VS Code
 * refuses a second registration of the same id.
 */
export const ClientCommand = {
    status: 'codellama.vscode.status',
    finetune: 'codellama.vscode.finetune',
    cancelFinetune: 'codellama.vscode.cancelFinetune',
    evaluate: 'codellama.vscode.evaluate',
    useAdapter: 'codellama.vscode.useAdapter',
    rebuildDataset: 'codellama.vscode.rebuildDataset',
    restart: 'codellama.vscode.restart',
    showLog: 'codellama.vscode.showLog',
} as const;

/**
 * Settings the server reads (camelCase keys of the `codellama` section), in the order of
 * `Settings` in lsp_server/settings.py; tests/test_option_drift.py fails when they differ.
 */
export const SERVER_SETTINGS = [
    'model',
    'adapter',
    'device',
    'dtype',
    'quantize',
    'trustRemoteCode',
    'backend',
    'endpoint',
    'engineModel',
    'apiKeyEnv',
    'maxNewTokens',
    'contextTokens',
    'debounceMs',
    'promptLookup',
    'prefetch',
    'logLevel',
    'logFile',
    'refactorModel',
    'watchDataset',
    'stateDir',
    'repoContext',
    'repoContextTokens',
] as const;
export type ServerSettingName = (typeof SERVER_SETTINGS)[number];

/** Settings only the extension reads; changing one of the `RESTART_SETTINGS` restarts the server. */
export const CLIENT_SETTINGS = ['serverCommand', 'serverEnv', 'finetune'] as const;
export const RESTART_SETTINGS = ['serverCommand', 'serverEnv'] as const;

/** Module run with the Python interpreter when no `codellama.serverCommand` is set. */
export const SERVER_MODULE = 'lsp_server';
export const DEFAULT_PYTHON = 'python3';

/** Refactor kind (lsp_server/refactor/actions.py) whose code action needs the user's instruction. */
export const INSTRUCTION_REFACTOR_KIND = 'instruction';
