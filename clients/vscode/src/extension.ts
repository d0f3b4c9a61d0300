/** Entry point: wires the output channel, status bar, server manager and palette commands. */

import * as vscode from 'vscode';

import { registerCommands } from './commands';
import { SERVER_NAME } from './constants';
import { ServerManager } from './server';
import { StatusBar } from './statusBar';

let server: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const output = vscode.window.createOutputChannel(SERVER_NAME, { log: true });
    const status = new StatusBar();
    server = new ServerManager(output, status);
    context.subscriptions.push(output, status, ...registerCommands(server, output));
    await server.restart();
}

export async function deactivate(): Promise<void> {
    await server?.dispose();
    server = undefined;
}
