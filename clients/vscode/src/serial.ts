/**
 * Serialising restarts: a restart requested while one is running is not started in parallel;
 * all requests made during a run coalesce into exactly one more run afterwards (the settings
 * may have changed again while the first restart was under way). Pure, unit-tested.
 */

export class CoalescingRunner {
    private running: Promise<void> | undefined;
    private again = false;

    constructor(private readonly task: () => Promise<void>) {}

    /** Run the task now, or once more after the current run; resolves when that run is done. */
    run(): Promise<void> {
        if (this.running) {
            this.again = true;
            return this.running;
        }
        this.running = this.loop().finally(() => {
            this.running = undefined;
        });
        return this.running;
    }

    /** True while a run is in progress. */
    get busy(): boolean {
        return this.running !== undefined;
    }

    private async loop(): Promise<void> {
        do {
            this.again = false;
            await this.task();
        } while (this.again);
    }
}
