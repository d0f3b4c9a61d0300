/** The CodeLlama status bar item: renders `renderStatus(...)`; clicking runs "Show status". */

import * as vscode from 'vscode';

import { ClientCommand } from './constants';
import { type ProgressEntry, renderStatus, type ServerState, type StatusSummary } from './statusModel';

export class StatusBar implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem('codellama.status', vscode.StatusBarAlignment.Right, 100);
    private server: ServerState = 'stopped';
    private summary: StatusSummary = {};
    private progress: ProgressEntry | undefined;
    private failure: string | undefined;

    constructor() {
        this.item.name = 'CodeLlama';
        this.item.command = ClientCommand.status;
        this.render();
        this.item.show();
    }

    setServer(state: ServerState, failure?: string): void {
        this.server = state;
        this.failure = failure;
        if (state !== 'running') {
            this.progress = undefined;
        }
        this.render();
    }

    setSummary(summary: StatusSummary): void {
        this.summary = summary;
        this.render();
    }

    setProgress(progress: ProgressEntry | undefined): void {
        this.progress = progress;
        this.render();
    }

    private render(): void {
        const view = renderStatus(this.server, this.summary, this.progress, this.failure);
        this.item.text = view.text;
        this.item.tooltip = view.tooltip;
        this.item.backgroundColor =
            view.severity === 'normal' ? undefined : new vscode.ThemeColor(`statusBarItem.${view.severity}Background`);
    }

    dispose(): void {
        this.item.dispose();
    }
}
