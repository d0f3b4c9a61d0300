/**
 * The palette commands: each forwards to a server command (`workspace/executeCommand`) and shows
 * the answer; "Use adapter…" first asks which adapter. Progress of long commands arrives as
 * `$/progress` and is shown by progress.ts.
 */

import * as path from 'node:path';

import * as vscode from 'vscode';

import { ClientCommand, SECTION, ServerCommand } from './constants';
import { errorMessage, ServerManager, ServerNotRunning } from './server';
import { finetuneArguments } from './settings';
import { describeResult } from './statusModel';

const ADAPTER_MARKER = 'codellama_adapter.json';

export function registerCommands(server: ServerManager, output: vscode.LogOutputChannel): vscode.Disposable[] {
    const run = async (command: string, argument?: unknown): Promise<unknown> => {
        try {
            const result = await server.execute(command, argument);
            output.info(`${command} → ${JSON.stringify(result, null, 2)}`);
            return result;
        } catch (error) {
            await showFailure(command, error, server, output);
            return undefined;
        }
    };
    const runAndTell = async (command: string, argument?: unknown): Promise<void> => {
        const result = await run(command, argument);
        if (result !== undefined) {
            void vscode.window.showInformationMessage(`CodeLlama: ${describeResult(command, result)}`);
        }
        void server.refreshStatus();
    };

    return [
        vscode.commands.registerCommand(ClientCommand.status, async () => {
            const result = await server.refreshStatus();
            if (result === undefined) {
                await showFailure(ServerCommand.status, new ServerNotRunning(), server, output);
                return;
            }
            output.info(`${ServerCommand.status} → ${JSON.stringify(result, null, 2)}`);
            output.show(true);
        }),
        vscode.commands.registerCommand(ClientCommand.finetune, () => {
            const settings = vscode.workspace.getConfiguration(SECTION).get<unknown>('finetune');
            return runAndTell(ServerCommand.finetune, finetuneArguments(settings));
        }),
        vscode.commands.registerCommand(ClientCommand.cancelFinetune, () => runAndTell(ServerCommand.cancelFinetune)),
        vscode.commands.registerCommand(ClientCommand.evaluate, () => runAndTell(ServerCommand.evaluate)),
        vscode.commands.registerCommand(ClientCommand.rebuildDataset, () => runAndTell(ServerCommand.rebuildDataset)),
        vscode.commands.registerCommand(ClientCommand.useAdapter, async (given?: unknown) => {
            const adapter = typeof given === 'string' ? given : await pickAdapter();
            if (adapter !== undefined) {
                await runAndTell(ServerCommand.useAdapter, { path: adapter });
            }
        }),
        vscode.commands.registerCommand(ClientCommand.restart, () => server.restart()),
        vscode.commands.registerCommand(ClientCommand.showLog, () => output.show()),
    ];
}

async function showFailure(command: string, error: unknown, server: ServerManager, output: vscode.LogOutputChannel): Promise<void> {
    output.error(`${command} failed: ${errorMessage(error)}`);
    if (error instanceof ServerNotRunning) {
        const choice = await vscode.window.showErrorMessage(`CodeLlama: ${error.message}`, 'Restart server', 'Show log');
        if (choice === 'Restart server') {
            await server.restart();
        } else if (choice === 'Show log') {
            output.show();
        }
        return;
    }
    void vscode.window.showErrorMessage(`CodeLlama: ${errorMessage(error)}`);
}

interface AdapterItem extends vscode.QuickPickItem {
    /** An adapter directory, `none`, or `browse` for the folder dialog. */
    value: string;
}

/** Offer "none", the adapters found in the workspace (dirs with codellama_adapter.json), browse. */
async function pickAdapter(): Promise<string | undefined> {
    const markers = await vscode.workspace.findFiles(`**/${ADAPTER_MARKER}`, '**/node_modules/**', 50);
    const found: AdapterItem[] = markers
        .map((uri) => path.dirname(uri.fsPath))
        .sort()
        .map((dir) => ({ label: path.basename(dir), description: vscode.workspace.asRelativePath(dir), value: dir }));
    const items: AdapterItem[] = [
        { label: '$(circle-slash) None', description: 'serve the base model only', value: 'none' },
        ...found,
        { label: '$(folder-opened) Browse…', description: 'choose an adapter directory', value: 'browse' },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: 'CodeLlama: Use adapter', placeHolder: 'LoRA adapter to serve' });
    if (!picked) {
        return undefined;
    }
    if (picked.value !== 'browse') {
        return picked.value;
    }
    const chosen = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use adapter' });
    return chosen?.[0]?.fsPath;
}
