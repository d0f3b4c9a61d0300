import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CoalescingRunner } from '../src/serial';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('CoalescingRunner', () => {
    it('never runs two restarts at once and coalesces requests made during a run', async () => {
        let active = 0;
        let maxActive = 0;
        let runs = 0;
        const runner = new CoalescingRunner(async () => {
            active++;
            maxActive = Math.max(maxActive, active);
            runs++;
            await tick();
            active--;
        });
        const first = runner.run();
        const others = [runner.run(), runner.run(), runner.run()];
        assert.equal(runner.busy, true);
        await Promise.all([first, ...others]);
        assert.equal(maxActive, 1);
        assert.equal(runs, 2, 'one run plus one coalesced follow-up');
        assert.equal(runner.busy, false);
        await runner.run();
        assert.equal(runs, 3);
    });
    it('recovers after a failing run', async () => {
        let fail = true;
        const runner = new CoalescingRunner(async () => {
            await tick();
            if (fail) {
                fail = false;
                throw new Error('boom');
            }
        });
        await assert.rejects(runner.run(), /boom/);
        assert.equal(runner.busy, false);
        await runner.run();
    });
});
