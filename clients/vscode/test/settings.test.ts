import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SERVER_SETTINGS } from '../src/constants';
import {
    affectsAny,
    commandSetting,
    finetuneArguments,
    readServerSettings,
    resolveServerLaunch,
    serverSection,
    splitCommandLine,
    substituteVariables,
} from '../src/settings';

describe('splitCommandLine', () => {
    const cases: [string, string[]][] = [
        ['codellama-lsp', ['codellama-lsp']],
        ['  python3   -m lsp_server ', ['python3', '-m', 'lsp_server']],
        ['"/opt/my env/bin/python" -m lsp_server', ['/opt/my env/bin/python', '-m', 'lsp_server']],
        ["'/a b/python' -m x", ['/a b/python', '-m', 'x']],
        ['/a\\ b/python', ['/a b/python']],
        ['python -c "print(\\"hi\\")"', ['python', '-c', 'print("hi")']],
        ['x ""', ['x', '']],
        ['', []],
    ];
    for (const [line, expected] of cases) {
        it(`splits ${JSON.stringify(line)}`, () => assert.deepEqual(splitCommandLine(line), expected));
    }
    it('rejects an unterminated quote with the setting name', () => {
        assert.throws(() => splitCommandLine('"python -m'), /unterminated " quote in codellama.serverCommand/);
    });
});

describe('substituteVariables', () => {
    const context = { workspaceFolder: '/ws', interpreter: '/venv/bin/python', home: '/home/u', env: { TOKEN: 'abc' } };
    const cases: [string, string][] = [
        ['${workspaceFolder}/.venv/bin/python', '/ws/.venv/bin/python'],
        ['${interpreter}', '/venv/bin/python'],
        ['${userHome}/bin/${env:TOKEN}', '/home/u/bin/abc'],
        ['${env:MISSING}x', 'x'],
        ['${unknown}', '${unknown}'],
    ];
    for (const [input, expected] of cases) {
        it(`expands ${input}`, () => assert.equal(substituteVariables(input, context), expected));
    }
    it('falls back to python3 for ${interpreter} without the Python extension', () => {
        assert.equal(substituteVariables('${interpreter}', {}), 'python3');
    });
});

describe('resolveServerLaunch', () => {
    it('uses the setting (array) first, with variables expanded', () => {
        assert.deepEqual(resolveServerLaunch(['${workspaceFolder}/py', '-m', 'lsp_server'], { workspaceFolder: '/w', interpreter: '/i' }), {
            command: '/w/py',
            args: ['-m', 'lsp_server'],
            source: 'setting',
        });
    });
    it('accepts the setting as a command line string', () => {
        assert.deepEqual(resolveServerLaunch('codellama-lsp --log debug', {}), { command: 'codellama-lsp', args: ['--log', 'debug'], source: 'setting' });
    });
    it('uses the Python extension interpreter when the setting is empty', () => {
        for (const empty of [[], '', '   ', undefined, null]) {
            assert.deepEqual(resolveServerLaunch(empty, { interpreter: '/venv/bin/python' }), {
                command: '/venv/bin/python',
                args: ['-m', 'lsp_server'],
                source: 'python-extension',
            });
        }
    });
    it('falls back to python3 -m lsp_server', () => {
        assert.deepEqual(resolveServerLaunch([], {}), { command: 'python3', args: ['-m', 'lsp_server'], source: 'default' });
    });
    it('rejects settings of the wrong type with a message naming the setting', () => {
        assert.throws(() => commandSetting(42), /codellama.serverCommand must be a string or an array of strings/);
        assert.throws(() => commandSetting(['python', 3]), /codellama.serverCommand/);
    });
});

describe('server settings', () => {
    const config = (values: Record<string, unknown>) => ({ get: <T>(key: string) => values[key] as T | undefined });

    it('reads every server setting and drops unset ones', () => {
        const values = { model: 'bundled:smollm2-135m', adapter: null, maxNewTokens: 32, watchDataset: false, serverCommand: ['x'] };
        assert.deepEqual(readServerSettings(config(values)), { model: 'bundled:smollm2-135m', maxNewTokens: 32, watchDataset: false });
    });
    it('mirrors the server settings named in docs/architecture.md', () => {
        for (const name of ['model', 'adapter', 'device', 'dtype', 'maxNewTokens', 'contextTokens', 'debounceMs', 'logLevel', 'logFile', 'promptLookup', 'refactorModel', 'watchDataset', 'stateDir']) {
            assert.ok((SERVER_SETTINGS as readonly string[]).includes(name), name);
        }
    });
    it('filters client-only keys out of the workspace/configuration section', () => {
        const section = { model: 'm', serverCommand: ['x'], serverEnv: {}, finetune: { maxSteps: 3 }, trace: { server: 'off' }, debounceMs: 10 };
        assert.deepEqual(serverSection(section), { model: 'm', debounceMs: 10 });
        assert.equal(serverSection(null), null);
    });
    it('builds finetune arguments without unset values', () => {
        assert.deepEqual(finetuneArguments({ maxSteps: 4, maxMinutes: null }), { maxSteps: 4 });
        assert.deepEqual(finetuneArguments({ maxSteps: 4, extraOptions: { maxHoles: 8, maxSteps: 99, lr: null } }), { maxHoles: 8, maxSteps: 4 });
        assert.deepEqual(finetuneArguments(undefined), {});
        assert.deepEqual(finetuneArguments([1]), {});
    });
    it('detects changes of restart settings only', () => {
        const event = (changed: string[]) => ({ affectsConfiguration: (s: string) => changed.includes(s) });
        assert.equal(affectsAny(event(['codellama.serverCommand']), 'codellama', ['serverCommand', 'serverEnv']), true);
        assert.equal(affectsAny(event(['codellama.model']), 'codellama', ['serverCommand', 'serverEnv']), false);
    });
});
