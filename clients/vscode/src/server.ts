/**
 * Creating, restarting and talking to the language client. Restarts are serialised
 * (`CoalescingRunner`): changing a setting twice quickly, or changing the interpreter while a
 * restart runs, never starts two servers.
 */

import * as vscode from 'vscode';
import {
    type CodeAction,
    ExecuteCommandRequest,
    type ExecuteCommandParams,
    LanguageClient,
    type LanguageClientOptions,
    type ResponseError,
    RevealOutputChannelOn,
    type ServerOptions,
    State,
    TransportKind,
} from 'vscode-languageclient/node';

import { RESTART_SETTINGS, SECTION, SERVER_NAME, ServerCommand } from './constants';
import { ProgressTracker } from './progress';
import { onInterpreterChanged, pythonInterpreter } from './python';
import { needsInstruction, validateInstruction, withInstruction } from './refactor';
import { CoalescingRunner } from './serial';
import {
    affectsAny,
    commandSetting,
    readServerSettings,
    resolveServerLaunch,
    serverEnvironment,
    serverSection,
    type ServerLaunch,
    untrustedCommandProblem,
} from './settings';
import { StatusBar } from './statusBar';
import { summarizeStatus } from './statusModel';

/** Model load states after which polling `codellama.status` stops. */
const SETTLED_STATES = new Set(['ready', 'failed']);
const STATUS_POLL_MS = 2000;

export class ServerManager implements vscode.Disposable {
    private client: LanguageClient | undefined;
    private readonly runner = new CoalescingRunner(() => this.cycle());
    private readonly disposables: vscode.Disposable[] = [];
    private readonly progress: ProgressTracker;
    private poll: NodeJS.Timeout | undefined;
    private stopping = false;

    constructor(
        private readonly output: vscode.LogOutputChannel,
        private readonly status: StatusBar,
    ) {
        this.progress = new ProgressTracker(() => {
            this.status.setProgress(this.progress.book.current());
            if (this.progress.book.size === 0) {
                void this.refreshStatus();
            }
        });
        this.disposables.push(
            this.progress,
            vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
            vscode.workspace.onDidGrantWorkspaceTrust(() => {
                this.output.info('Workspace trusted: restarting the server with the full settings.');
                void this.restart();
            }),
        );
        void onInterpreterChanged(() => {
            if (!this.launchSetting()) {
                this.output.info('Python interpreter changed: restarting the server.');
                void this.restart();
            }
        }).then((disposable) => this.disposables.push(disposable));
    }

    /** Start the server, or stop and start it; overlapping calls coalesce. */
    restart(): Promise<void> {
        return this.runner.run();
    }

    /** The running client, if any. */
    get running(): LanguageClient | undefined {
        return this.client?.state === State.Running ? this.client : undefined;
    }

    /**
     * `workspace/executeCommand` on the server. `argument` is sent as the single argument object;
     * without one the command gets no arguments (server defaults).
     */
    async execute(command: string, argument?: unknown): Promise<unknown> {
        const client = this.running;
        if (!client) {
            throw new ServerNotRunning();
        }
        const params: ExecuteCommandParams = { command, arguments: argument === undefined ? [] : [argument] };
        return client.sendRequest(ExecuteCommandRequest.type, params);
    }

    /** Ask the server for its status and update the status bar; returns the raw result. */
    async refreshStatus(): Promise<unknown> {
        if (!this.running) {
            return undefined;
        }
        try {
            const result = await this.execute(ServerCommand.status);
            const summary = summarizeStatus(result);
            this.status.setSummary(summary);
            this.schedulePoll(summary.modelState);
            return result;
        } catch (error) {
            this.output.warn(`codellama.status failed: ${String(error)}`);
            return undefined;
        }
    }

    private schedulePoll(modelState: string | undefined): void {
        clearTimeout(this.poll);
        this.poll = undefined;
        if (modelState !== undefined && !SETTLED_STATES.has(modelState)) {
            this.poll = setTimeout(() => void this.refreshStatus(), STATUS_POLL_MS);
        }
    }

    private launchSetting(): unknown {
        const value = vscode.workspace.getConfiguration(SECTION).get<unknown>('serverCommand');
        return Array.isArray(value) ? (value.length > 0 ? value : undefined) : value || undefined;
    }

    private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
        if (affectsAny(event, SECTION, RESTART_SETTINGS)) {
            this.output.info('codellama.serverCommand/serverEnv changed: restarting the server.');
            void this.restart();
        } else if (event.affectsConfiguration(SECTION) && this.running) {
            // The server pulls the new values through workspace/configuration (filtered below)
            // and also accepts them pushed here.
            const settings = serverSection(vscode.workspace.getConfiguration().get(SECTION));
            void this.running.sendNotification('workspace/didChangeConfiguration', { settings: { [SECTION]: settings } });
        }
    }

    private async cycle(): Promise<void> {
        await this.stop();
        await this.start();
    }

    private async start(): Promise<void> {
        this.status.setServer('starting');
        let launch: ServerLaunch;
        const folder = vscode.workspace.workspaceFolders?.[0];
        const config = vscode.workspace.getConfiguration(SECTION, folder);
        // Restricted Mode: never run an interpreter or command the workspace provides.
        const trusted = vscode.workspace.isTrusted;
        try {
            const serverCommand = config.get('serverCommand');
            const problem = trusted ? undefined : untrustedCommandProblem(commandSetting(serverCommand) ?? []);
            if (problem) {
                this.fail(`codellama.serverCommand is not used in Restricted Mode (${problem}); trust the workspace to start the server with it.`);
                return;
            }
            launch = resolveServerLaunch(serverCommand, {
                workspaceFolder: folder?.uri.fsPath,
                interpreter: trusted ? await pythonInterpreter(folder?.uri) : undefined,
                home: process.env.HOME ?? process.env.USERPROFILE,
                env: process.env,
            });
        } catch (error) {
            this.fail(`Invalid codellama.serverCommand: ${errorMessage(error)}`);
            return;
        }
        this.output.info(`Starting server (${launch.source}): ${[launch.command, ...launch.args].join(' ')}`);
        const serverOptions: ServerOptions = {
            command: launch.command,
            args: launch.args,
            transport: TransportKind.stdio,
            options: { cwd: folder?.uri.fsPath, env: serverEnvironment(process.env, config.get('serverEnv')) },
        };
        const client = new LanguageClient(SECTION, SERVER_NAME, serverOptions, this.clientOptions(config));
        client.registerFeature(this.progress.featureFor(client));
        this.client = client;
        client.onDidChangeState(({ newState }) => {
            if (this.client !== client) {
                return;
            }
            if (newState === State.Running) {
                // Also after the client's own automatic restart of a crashed server.
                this.status.setServer('running');
                void this.refreshStatus();
            } else if (newState === State.Stopped && !this.stopping) {
                this.progress.clear();
                this.status.setServer('failed', 'the server process exited');
            }
        });
        try {
            await client.start();
        } catch (error) {
            this.fail(`Could not start the server with \`${launch.command}\`: ${errorMessage(error)}`);
        }
    }

    private clientOptions(config: vscode.WorkspaceConfiguration): LanguageClientOptions {
        return {
            documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
            outputChannel: this.output,
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: readServerSettings(config),
            middleware: {
                workspace: {
                    // Client-only keys (serverCommand, finetune, trace, ...) stay on this side.
                    configuration: async (params, token, next) => {
                        const result: unknown = await next(params, token);
                        if (!Array.isArray(result)) {
                            return result as ResponseError;
                        }
                        return result.map((value: unknown, i) => (params.items[i]?.section === SECTION ? serverSection(value) : value));
                    },
                },
                executeCommand: async (command, args: unknown[], next): Promise<unknown> => {
                    if (command === ServerCommand.refactor && needsInstruction(args[0])) {
                        const instruction = await askInstruction();
                        if (instruction === undefined) {
                            return undefined;
                        }
                        args = [withInstruction(args[0], instruction), ...args.slice(1)];
                    }
                    return (await next(command, args)) as unknown;
                },
                resolveCodeAction: async (item, token, next) => {
                    const action = item as CodeAction & { data?: unknown };
                    if (action.data === undefined) {
                        // A command-only action ("Refactor with instruction…"): nothing to resolve.
                        return item;
                    }
                    if (needsInstruction(action.data)) {
                        const instruction = await askInstruction();
                        if (instruction === undefined) {
                            return item;
                        }
                        action.data = withInstruction(action.data, instruction);
                    }
                    return next(item, token);
                },
            },
        };
    }

    private fail(message: string): void {
        this.output.error(message);
        this.status.setServer('failed', message);
        void vscode.window.showErrorMessage(`CodeLlama: ${message}`, 'Show log', 'Open settings').then((choice) => {
            if (choice === 'Show log') {
                this.output.show();
            } else if (choice === 'Open settings') {
                void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.serverCommand`);
            }
        });
    }

    private async stop(): Promise<void> {
        clearTimeout(this.poll);
        const client = this.client;
        this.client = undefined;
        this.progress.clear();
        if (!client) {
            return;
        }
        this.stopping = true;
        try {
            if (client.state !== State.Stopped) {
                await client.stop(5000);
            }
        } catch (error) {
            this.output.warn(`Stopping the server: ${errorMessage(error)}`);
        } finally {
            this.stopping = false;
            await client.dispose().catch(() => undefined);
        }
        this.status.setServer('stopped');
    }

    async dispose(): Promise<void> {
        await this.stop();
        for (const disposable of this.disposables) {
            disposable.dispose();
        }
    }
}

export class ServerNotRunning extends Error {
    constructor() {
        super('The CodeLlama server is not running.');
    }
}

export function errorMessage(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}

async function askInstruction(): Promise<string | undefined> {
    const text = await vscode.window.showInputBox({
        title: 'CodeLlama: Refactor with instruction',
        prompt: 'What should the model change in the selected code?',
        placeHolder: 'e.g. use pathlib instead of os.path',
        ignoreFocusOut: true,
        validateInput: validateInstruction,
    });
    return text === undefined ? undefined : text.trim();
}
