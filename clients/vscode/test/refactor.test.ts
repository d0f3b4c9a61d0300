import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { needsInstruction, validateInstruction, withInstruction } from '../src/refactor';

describe('instruction refactor', () => {
    const range = { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } };
    const cases: [unknown, boolean][] = [
        [{ uri: 'file:///a.py', range, kind: 'instruction' }, true],
        [{ uri: 'file:///a.py', range, kind: 'instruction', instruction: null }, true],
        [{ uri: 'file:///a.py', range, kind: 'instruction', instruction: '   ' }, true],
        [{ uri: 'file:///a.py', range, kind: 'instruction', instruction: 'use pathlib' }, false],
        [{ uri: 'file:///a.py', range, kind: 'docstring' }, false],
        [undefined, false],
        ['instruction', false],
    ];
    for (const [args, expected] of cases) {
        it(`needsInstruction(${JSON.stringify(args)}) is ${expected}`, () => assert.equal(needsInstruction(args), expected));
    }
    it('fills in the trimmed instruction and keeps the rest', () => {
        assert.deepEqual(withInstruction({ uri: 'u', range, kind: 'instruction' }, '  add logging '), {
            uri: 'u',
            range,
            kind: 'instruction',
            instruction: 'add logging',
        });
    });
    it('refuses a blank instruction in the input box', () => {
        assert.ok(validateInstruction('  '));
        assert.equal(validateInstruction('add logging'), undefined);
    });
});
