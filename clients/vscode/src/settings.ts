/**
 * Reading the `codellama.*` settings and turning them into what the server and the process
 * launcher need. Pure functions over a minimal configuration interface, so they are unit-tested
 * without VS Code.
 */

import { DEFAULT_PYTHON, SERVER_MODULE, SERVER_SETTINGS } from './constants';

/** The part of `vscode.WorkspaceConfiguration` we use. */
export interface ConfigLike {
    get<T>(key: string): T | undefined;
}

/** The server's settings as JSON (camelCase keys), as sent in initializationOptions. */
export type ServerSettings = Record<string, unknown>;

/** How to start the server process. */
export interface ServerLaunch {
    command: string;
    args: string[];
    /** Where the command came from, for the log. */
    source: 'setting' | 'python-extension' | 'default';
}

/** Values `${...}` variables in `codellama.serverCommand` expand to. */
export interface LaunchContext {
    workspaceFolder?: string;
    interpreter?: string;
    home?: string;
    env?: Record<string, string | undefined>;
}

/** Read the settings the server understands; unset (null/undefined) values are left out. */
export function readServerSettings(config: ConfigLike): ServerSettings {
    const settings: ServerSettings = {};
    for (const key of SERVER_SETTINGS) {
        const value = config.get<unknown>(key);
        if (value !== undefined && value !== null) {
            settings[key] = value;
        }
    }
    return settings;
}

/** Keep only the server's own keys of a `codellama` section (drops the client-only ones). */
export function serverSection(section: unknown): unknown {
    if (section === null || typeof section !== 'object' || Array.isArray(section)) {
        return section;
    }
    const known = new Set<string>(SERVER_SETTINGS);
    return Object.fromEntries(
        Object.entries(section as Record<string, unknown>).filter(([key]) => known.has(key)),
    );
}

/**
 * Split a command line the way a POSIX shell would for the simple cases users write:
 * whitespace separates words, single and double quotes group, backslash escapes.
 */
export function splitCommandLine(line: string): string[] {
    const words: string[] = [];
    let word = '';
    let inWord = false;
    let quote: '"' | "'" | undefined;
    for (let i = 0; i < line.length; i++) {
        const ch = line[i];
        if (quote) {
            if (ch === quote) {
                quote = undefined;
            } else if (ch === '\\' && quote === '"' && i + 1 < line.length) {
                word += line[++i];
            } else {
                word += ch;
            }
        } else if (ch === '"' || ch === "'") {
            quote = ch;
            inWord = true;
        } else if (ch === '\\' && i + 1 < line.length) {
            word += line[++i];
            inWord = true;
        } else if (/\s/.test(ch)) {
            if (inWord) {
                words.push(word);
            }
            word = '';
            inWord = false;
        } else {
            word += ch;
            inWord = true;
        }
    }
    if (quote) {
        throw new Error(`unterminated ${quote} quote in codellama.serverCommand: ${line}`);
    }
    if (inWord) {
        words.push(word);
    }
    return words;
}

/** Expand `${workspaceFolder}`, `${userHome}`, `${interpreter}` and `${env:NAME}`. */
export function substituteVariables(value: string, context: LaunchContext): string {
    return value.replace(/\$\{([^}]+)\}/g, (match: string, name: string) => {
        if (name === 'workspaceFolder' && context.workspaceFolder !== undefined) {
            return context.workspaceFolder;
        }
        if (name === 'userHome' && context.home !== undefined) {
            return context.home;
        }
        if (name === 'interpreter') {
            return context.interpreter ?? DEFAULT_PYTHON;
        }
        if (name.startsWith('env:')) {
            return context.env?.[name.slice(4)] ?? '';
        }
        return match;
    });
}

/** Normalise the `codellama.serverCommand` setting (string or array) to argv, or undefined. */
export function commandSetting(value: unknown): string[] | undefined {
    if (typeof value === 'string') {
        const words = splitCommandLine(value.trim());
        return words.length > 0 ? words : undefined;
    }
    if (Array.isArray(value)) {
        if (!value.every((item) => typeof item === 'string')) {
            throw new Error('codellama.serverCommand must be a string or an array of strings');
        }
        const words = value.filter((item) => item.length > 0);
        return words.length > 0 ? words : undefined;
    }
    if (value === undefined || value === null) {
        return undefined;
    }
    throw new Error('codellama.serverCommand must be a string or an array of strings');
}

/**
 * Decide how to start the server: `codellama.serverCommand` if set, else the Python extension's
 * interpreter with `-m lsp_server`, else `python3 -m lsp_server`.
 */
export function resolveServerLaunch(serverCommand: unknown, context: LaunchContext): ServerLaunch {
    const argv = commandSetting(serverCommand);
    if (argv) {
        const [command, ...args] = argv.map((word) => substituteVariables(word, context));
        return { command, args, source: 'setting' };
    }
    if (context.interpreter) {
        return { command: context.interpreter, args: ['-m', SERVER_MODULE], source: 'python-extension' };
    }
    return { command: DEFAULT_PYTHON, args: ['-m', SERVER_MODULE], source: 'default' };
}

function plainObject(value: unknown): Record<string, unknown> {
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * The argument object for `codellama.finetune` from the `codellama.finetune.*` settings:
 * `extraOptions` (any option the server's fine-tune accepts) overlaid by `maxSteps` and
 * `maxMinutes`; unset values are left out so the server's defaults apply.
 */
export function finetuneArguments(value: unknown): Record<string, unknown> {
    const { extraOptions, ...named } = plainObject(value);
    return Object.fromEntries(
        Object.entries({ ...plainObject(extraOptions), ...named }).filter(([, v]) => v !== null && v !== undefined),
    );
}

/** Whether a configuration change touched any of `keys` under `section` (VS Code's event shape). */
export function affectsAny(
    event: { affectsConfiguration(section: string): boolean },
    section: string,
    keys: readonly string[],
): boolean {
    return keys.some((key) => event.affectsConfiguration(`${section}.${key}`));
}

/**
 * Why `argv` (a resolved `codellama.serverCommand`, variables not yet expanded) must not start in
 * an untrusted workspace, or undefined when it may: a command taken from the workspace
 * (`${workspaceFolder}/...` or a relative path, which resolves against the workspace folder) would
 * run the repository's code before the user trusted it.
 */
export function untrustedCommandProblem(argv: readonly string[]): string | undefined {
    const command = argv[0];
    if (argv.some((word) => word.includes('${workspaceFolder}'))) {
        return 'it uses ${workspaceFolder}';
    }
    if (command !== undefined && !command.startsWith('/') && /[\\/]/.test(command) && !/^[A-Za-z]:[\\/]/.test(command)) {
        return `its program ${command} is a path relative to the workspace`;
    }
    return undefined;
}

/** The server's environment: the editor's, `codellama.serverEnv`, and `PYTHONSAFEPATH=1` so that
 * `python -m lsp_server` started in the workspace folder never imports the workspace's modules
 * (a `torch.py` or `training/` there would otherwise shadow ours). */
export function serverEnvironment(base: Record<string, string | undefined>, serverEnv: unknown): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(base)) {
        if (value !== undefined) {
            env[key] = value;
        }
    }
    for (const [key, value] of Object.entries(plainObject(serverEnv))) {
        if (typeof value === 'string') {
            env[key] = value;
        }
    }
    env.PYTHONSAFEPATH = '1';
    return env;
}
