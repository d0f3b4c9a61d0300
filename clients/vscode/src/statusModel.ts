/**
 * What the status bar shows, as pure data: the server's lifecycle, what `codellama.status`
 * last said (model, adapter, load state) and the work-done progress in flight. The VS Code side
 * (statusBar.ts) only renders `renderStatus(...)`.
 */

export type ServerState = 'stopped' | 'starting' | 'running' | 'failed';

export interface ProgressEntry {
    title: string;
    message?: string;
    percentage?: number;
    /** Monotonic counter: the most recently started progress is the one shown. */
    order: number;
}

export interface StatusSummary {
    model?: string;
    adapter?: string;
    /** The model's load state as the server reports it (`loading`, `ready`, `failed`, ...). */
    modelState?: string;
    error?: string;
}

export interface StatusView {
    text: string;
    tooltip: string;
    /** `error` and `warning` pick the status bar item's background colour. */
    severity: 'normal' | 'warning' | 'error';
}

/** Progress tokens in flight, updated from `$/progress` begin / report / end. */
export class ProgressBook {
    private readonly entries = new Map<string, ProgressEntry>();
    private counter = 0;

    begin(token: string, title: string, message?: string, percentage?: number): void {
        this.entries.set(token, { title, message, percentage, order: ++this.counter });
    }

    report(token: string, message?: string, percentage?: number): void {
        const entry = this.entries.get(token);
        if (!entry) {
            return;
        }
        if (message !== undefined) {
            entry.message = message;
        }
        if (percentage !== undefined) {
            entry.percentage = percentage;
        }
    }

    end(token: string): void {
        this.entries.delete(token);
    }

    clear(): void {
        this.entries.clear();
    }

    /** The progress to show: the most recently started one. */
    current(): ProgressEntry | undefined {
        let best: ProgressEntry | undefined;
        for (const entry of this.entries.values()) {
            if (!best || entry.order > best.order) {
                best = entry;
            }
        }
        return best;
    }

    get size(): number {
        return this.entries.size;
    }
}

function pickString(...values: unknown[]): string | undefined {
    for (const value of values) {
        if (typeof value === 'string' && value.length > 0) {
            return value;
        }
    }
    return undefined;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
    return value !== null && typeof value === 'object' && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : undefined;
}

/**
 * Pull model, adapter and load state out of a `codellama.status` result. The server reports the
 * model host either at the top level or under a `model` object; both shapes are accepted.
 */
export function summarizeStatus(result: unknown): StatusSummary {
    const top = asRecord(result);
    if (!top) {
        return {};
    }
    const host = asRecord(top.model) ?? asRecord(top.host) ?? top;
    const settings = asRecord(top.settings);
    return {
        model: pickString(host.model, host.modelId, typeof top.model === 'string' ? top.model : undefined, settings?.model),
        adapter: pickString(host.adapter, top.adapter),
        modelState: pickString(host.state, top.state),
        error: pickString(host.error, top.error),
    };
}

/**
 * A short display name for a model id or path: `codellama/CodeLlama-7b-hf` → `CodeLlama-7b-hf`;
 * fine-tune runs keep their adapter in `<run>/adapter`, so that one is named after the run.
 */
export function shortName(idOrPath: string): string {
    const trimmed = idOrPath.replace(/[\\/]+$/, '');
    if (trimmed.startsWith('bundled:')) {
        return trimmed.slice('bundled:'.length);
    }
    const parts = trimmed.split(/[\\/]/).filter((part) => part.length > 0);
    const last = parts[parts.length - 1] ?? trimmed;
    return last === 'adapter' && parts.length > 1 ? parts[parts.length - 2] : last;
}

/** A progress title for display: the server's `codellama: ` prefix dropped, first letter upper. */
export function progressTitle(title: string): string {
    const bare = title.replace(/^codellama:\s*/i, '').trim() || title;
    return bare.charAt(0).toUpperCase() + bare.slice(1);
}

function percentText(percentage: number | undefined): string {
    return percentage === undefined ? '' : ` ${Math.round(Math.max(0, Math.min(100, percentage)))}%`;
}

/** Render the status bar item from the server state, the last status summary and progress. */
export function renderStatus(
    server: ServerState,
    summary: StatusSummary,
    progress: ProgressEntry | undefined,
    failure?: string,
): StatusView {
    const what = summary.model ? shortName(summary.model) + (summary.adapter ? ` + ${shortName(summary.adapter)}` : '') : '';
    const details = [
        summary.model ? `Model: ${summary.model}` : undefined,
        `Adapter: ${summary.adapter ?? 'none'}`,
        summary.modelState ? `State: ${summary.modelState}` : undefined,
        summary.error ? `Error: ${summary.error}` : undefined,
        'Click for the full status.',
    ].filter((line): line is string => line !== undefined);

    if (server === 'failed') {
        return {
            text: '$(error) CodeLlama',
            tooltip: `The CodeLlama server is not running: ${failure ?? 'it failed to start'}. Click for details.`,
            severity: 'error',
        };
    }
    if (server === 'stopped') {
        return { text: '$(circle-slash) CodeLlama', tooltip: 'The CodeLlama server is stopped.', severity: 'normal' };
    }
    if (server === 'starting') {
        return { text: '$(sync~spin) CodeLlama: starting', tooltip: 'Starting the CodeLlama server…', severity: 'normal' };
    }
    if (progress) {
        const message = progress.message ? ` — ${progress.message}` : '';
        const title = progressTitle(progress.title);
        return {
            text: `$(sync~spin) CodeLlama: ${title}${percentText(progress.percentage)}`,
            tooltip: [`${title}${percentText(progress.percentage)}${message}`, ...details].join('\n'),
            severity: 'normal',
        };
    }
    if (summary.error || summary.modelState === 'failed') {
        return { text: `$(warning) CodeLlama${what ? `: ${what}` : ''}`, tooltip: details.join('\n'), severity: 'warning' };
    }
    if (summary.modelState && summary.modelState !== 'ready') {
        return { text: `$(sync~spin) CodeLlama: ${summary.modelState}`, tooltip: details.join('\n'), severity: 'normal' };
    }
    return { text: `$(sparkle) CodeLlama${what ? `: ${what}` : ''}`, tooltip: details.join('\n'), severity: 'normal' };
}

/** A one-line human summary of a command's result for a notification. */
export function describeResult(command: string, result: unknown): string {
    const record = asRecord(result);
    if (result === null || result === undefined) {
        return `${command}: done.`;
    }
    if (typeof result === 'string') {
        return result;
    }
    if (record) {
        const message = pickString(record.error, record.message, record.summary, record.detail);
        if (message) {
            return message;
        }
        if (record.started === true) {
            return `${command}: started${typeof record.run === 'string' ? ` (${record.run})` : ''}.`;
        }
        const status = pickString(record.status, record.state, record.outcome);
        if (status) {
            return `${command}: ${status}.`;
        }
    }
    const text = JSON.stringify(result);
    return `${command}: ${text.length > 200 ? `${text.slice(0, 197)}...` : text}`;
}
