import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { serverEnvironment, untrustedCommandProblem } from '../src/settings';

// out/test/trust.test.js → ../../package.json
const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    capabilities: { untrustedWorkspaces: { supported: string | boolean; restrictedConfigurations: string[] } };
    contributes: { configuration: { properties: Record<string, { scope?: string }> } };
};
const properties = manifest.contributes.configuration.properties;

/** Settings through which a cloned repository's `.vscode/settings.json` could run code, read or
 * write files elsewhere, or choose what the model loads. */
const ENGINE = ['backend', 'endpoint', 'engineModel', 'apiKeyEnv']; // where code is sent, with whose key
const DANGEROUS = ['serverCommand', 'serverEnv', 'trustRemoteCode', 'logFile', 'stateDir', 'model', 'adapter', 'refactorModel', ...ENGINE];
const MACHINE_ONLY = ['serverCommand', 'serverEnv', 'trustRemoteCode', 'logFile', 'stateDir', ...ENGINE];

describe('workspace trust (package.json)', () => {
    it('runs in Restricted Mode with limited support', () => {
        assert.equal(manifest.capabilities.untrustedWorkspaces.supported, 'limited');
    });
    it('restricts every dangerous setting in untrusted workspaces', () => {
        const restricted = manifest.capabilities.untrustedWorkspaces.restrictedConfigurations;
        for (const name of DANGEROUS) {
            assert.ok(properties[`codellama.${name}`], `codellama.${name} is not a setting`);
            assert.ok(restricted.includes(`codellama.${name}`), `codellama.${name} is not restricted`);
        }
    });
    it('lets no workspace set the settings that run code or pick paths', () => {
        for (const name of MACHINE_ONLY) {
            const scope = properties[`codellama.${name}`].scope;
            assert.ok(scope === 'machine' || scope === 'application', `codellama.${name} has scope ${scope}`);
        }
        for (const name of DANGEROUS) {
            assert.notEqual(properties[`codellama.${name}`].scope ?? 'window', 'window', `codellama.${name}`);
            assert.notEqual(properties[`codellama.${name}`].scope, 'resource', `codellama.${name}`);
        }
    });
});

describe('untrustedCommandProblem', () => {
    const refused: string[][] = [
        ['${workspaceFolder}/.venv/bin/python', '-m', 'lsp_server'],
        ['/usr/bin/python3', '${workspaceFolder}/run.py'],
        ['.venv/bin/python', '-m', 'lsp_server'],
        ['./serve.sh'],
        ['~/bin/codellama-lsp'],
    ];
    for (const argv of refused) {
        it(`refuses ${argv.join(' ')}`, () => assert.ok(untrustedCommandProblem(argv)));
    }
    const allowed: string[][] = [['codellama-lsp'], ['/opt/venv/bin/python', '-m', 'lsp_server'], ['python3', '-m', 'lsp_server'], []];
    for (const argv of allowed) {
        it(`allows ${argv.join(' ') || '(default)'}`, () => assert.equal(untrustedCommandProblem(argv), undefined));
    }
});

describe('serverEnvironment', () => {
    it('overlays serverEnv and always sets PYTHONSAFEPATH', () => {
        const env = serverEnvironment({ PATH: '/bin', HOME: undefined, PYTHONSAFEPATH: '' }, { HF_HUB_OFFLINE: '1', PYTHONSAFEPATH: '0', BAD: 3 });
        assert.deepEqual(env, { PATH: '/bin', HF_HUB_OFFLINE: '1', PYTHONSAFEPATH: '1' });
    });
    it('ignores a serverEnv that is not an object', () => {
        assert.deepEqual(serverEnvironment({ A: 'a' }, ['x']), { A: 'a', PYTHONSAFEPATH: '1' });
    });
});
