import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { describeResult, ProgressBook, progressTitle, renderStatus, shortName, summarizeStatus } from '../src/statusModel';

describe('ProgressBook', () => {
    it('shows the most recently started progress and forgets ended ones', () => {
        const book = new ProgressBook();
        book.begin('a', 'Loading model', undefined, 0);
        book.begin('b', 'Fine-tuning', 'step 0/10', 0);
        book.report('b', 'step 4/10', 40);
        assert.deepEqual({ ...book.current(), order: 0 }, { title: 'Fine-tuning', message: 'step 4/10', percentage: 40, order: 0 });
        book.end('b');
        assert.equal(book.current()?.title, 'Loading model');
        book.report('zzz', 'ignored', 5);
        book.end('a');
        assert.equal(book.current(), undefined);
        assert.equal(book.size, 0);
    });
    it('keeps the last message when a report has only a percentage', () => {
        const book = new ProgressBook();
        book.begin('t', 'Training', 'epoch 1');
        book.report('t', undefined, 55);
        assert.equal(book.current()?.message, 'epoch 1');
        assert.equal(book.current()?.percentage, 55);
    });
});

describe('summarizeStatus', () => {
    it('reads a flat model host status', () => {
        assert.deepEqual(summarizeStatus({ state: 'ready', model: 'bundled:smollm2-135m', adapter: null, error: null }), {
            model: 'bundled:smollm2-135m',
            adapter: undefined,
            modelState: 'ready',
            error: undefined,
        });
    });
    it('reads a status with the model host nested under "model"', () => {
        const result = { model: { state: 'loading', model: '/m/tiny', adapter: '/a/lora' }, finetune: { state: 'idle' } };
        assert.deepEqual(summarizeStatus(result), { model: '/m/tiny', adapter: '/a/lora', modelState: 'loading', error: undefined });
    });
    it('returns nothing for non-objects', () => {
        assert.deepEqual(summarizeStatus(null), {});
        assert.deepEqual(summarizeStatus('x'), {});
    });
});

describe('renderStatus', () => {
    const ready = { model: 'codellama/CodeLlama-7b-hf', adapter: '/ws/.codellama/adapters/run-1', modelState: 'ready' };
    it('names model and adapter when ready', () => {
        const view = renderStatus('running', ready, undefined);
        assert.equal(view.text, '$(sparkle) CodeLlama: CodeLlama-7b-hf + run-1');
        assert.match(view.tooltip, /Adapter: \/ws\/.codellama\/adapters\/run-1/);
        assert.equal(view.severity, 'normal');
    });
    it('shows the current progress with its percentage', () => {
        const view = renderStatus('running', ready, { title: 'codellama: fine-tuning', message: 'step 3/10', percentage: 30.4, order: 1 });
        assert.equal(view.text, '$(sync~spin) CodeLlama: Fine-tuning 30%');
        assert.match(view.tooltip, /step 3\/10/);
    });
    it('shows loading, failure and lifecycle states', () => {
        assert.equal(renderStatus('running', { modelState: 'loading' }, undefined).text, '$(sync~spin) CodeLlama: loading');
        assert.equal(renderStatus('running', { model: 'm', modelState: 'failed', error: 'OOM' }, undefined).severity, 'warning');
        assert.equal(renderStatus('starting', {}, undefined).text, '$(sync~spin) CodeLlama: starting');
        const failed = renderStatus('failed', ready, undefined, 'python3 not found');
        assert.equal(failed.severity, 'error');
        assert.match(failed.tooltip, /python3 not found/);
    });
    it('shortens model names', () => {
        assert.equal(shortName('bundled:smollm2-135m'), 'smollm2-135m');
        assert.equal(shortName('/tmp/models/tiny-llama/'), 'tiny-llama');
        assert.equal(shortName('C:\\models\\x'), 'x');
        assert.equal(shortName('/ws/.codellama/runs/ft-20261122-022514/adapter'), 'ft-20261122-022514');
    });
    it('cleans server progress titles', () => {
        assert.equal(progressTitle('codellama: fine-tuning'), 'Fine-tuning');
        assert.equal(progressTitle('Loading model'), 'Loading model');
    });
});

describe('describeResult', () => {
    it('prefers the server message, then a status word, then JSON', () => {
        assert.equal(describeResult('codellama.finetune', { message: 'Fine-tuning started' }), 'Fine-tuning started');
        assert.equal(describeResult('codellama.finetune', { started: true, run: '/r/ft-1' }), 'codellama.finetune: started (/r/ft-1).');
        assert.equal(describeResult('codellama.finetune', { started: false, error: 'a fine-tune is already running' }), 'a fine-tune is already running');
        assert.equal(describeResult('codellama.cancelFinetune', { status: 'cancelled' }), 'codellama.cancelFinetune: cancelled.');
        assert.equal(describeResult('codellama.evaluate', { exactMatch: 0.5 }), 'codellama.evaluate: {"exactMatch":0.5}');
        assert.equal(describeResult('codellama.rebuildDataset', null), 'codellama.rebuildDataset: done.');
        assert.ok(describeResult('x', { big: 'y'.repeat(500) }).endsWith('...'));
    });
});
