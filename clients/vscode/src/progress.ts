/**
 * Work-done progress from the server (`window/workDoneProgress/create` + `$/progress`) shown as
 * notifications (with a Cancel button when the server allows it) and recorded in a
 * `ProgressBook` that drives the status bar. It replaces the language client's default handler
 * (a spinner in the status bar that cannot feed ours): as a feature registered after the
 * built-in ones, its `initialize` runs after theirs on every (re)start and takes the request over.
 */

import * as vscode from 'vscode';
import {
    type ClientCapabilities,
    type FeatureState,
    type LanguageClient,
    type ProgressToken,
    type StaticFeature,
    WorkDoneProgress,
    WorkDoneProgressCancelNotification,
    WorkDoneProgressCreateRequest,
} from 'vscode-languageclient/node';

import { ProgressBook, progressTitle } from './statusModel';

export class ProgressTracker implements vscode.Disposable {
    readonly book = new ProgressBook();
    private readonly finishers = new Set<() => void>();

    constructor(private readonly onChange: () => void) {}

    /** A client feature that routes `client`'s server-created progress tokens here. */
    featureFor(client: LanguageClient): StaticFeature {
        return {
            getState: (): FeatureState => ({ kind: 'static' }),
            fillClientCapabilities: (capabilities: ClientCapabilities) => {
                capabilities.window = { ...capabilities.window, workDoneProgress: true };
            },
            initialize: () => {
                client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
                    this.track(client, token);
                });
            },
            clear: () => this.clear(),
        };
    }

    /** Follow one token (server-created, or a `workDoneToken` we sent with a request). */
    track(client: LanguageClient, token: ProgressToken): void {
        const key = String(token);
        let finish: () => void = () => undefined;
        const done = new Promise<void>((resolve) => {
            finish = () => {
                this.finishers.delete(finish);
                this.book.end(key);
                subscription.dispose();
                resolve();
                this.onChange();
            };
        });
        this.finishers.add(finish);
        let reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
        let shown = 0;
        const report = (message?: string, percentage?: number) => {
            const increment = percentage === undefined ? undefined : Math.max(0, percentage - shown);
            if (percentage !== undefined) {
                shown = Math.max(shown, percentage);
            }
            reporter?.report({ message, increment });
        };
        const subscription = client.onProgress(WorkDoneProgress.type, token, (value) => {
            if (value.kind === 'begin') {
                this.book.begin(key, value.title, value.message, value.percentage);
                void vscode.window.withProgress(
                    { location: vscode.ProgressLocation.Notification, title: `CodeLlama: ${progressTitle(value.title)}`, cancellable: value.cancellable ?? false },
                    (progress, cancellation) => {
                        reporter = progress;
                        report(value.message, value.percentage);
                        cancellation.onCancellationRequested(() => {
                            void client.sendNotification(WorkDoneProgressCancelNotification.type, { token });
                        });
                        return done;
                    },
                );
            } else if (value.kind === 'report') {
                this.book.report(key, value.message, value.percentage);
                report(value.message, value.percentage);
            } else {
                finish();
                return;
            }
            this.onChange();
        });
    }

    /** End every notification (the server went away). */
    clear(): void {
        for (const finish of [...this.finishers]) {
            finish();
        }
        this.book.clear();
    }

    dispose(): void {
        this.clear();
    }
}
