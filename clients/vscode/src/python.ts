/**
 * The interpreter chosen in the Python extension (ms-python.python), if it is installed, and an
 * event when the user picks another one. Only the few members of its public API we use are
 * declared here, so the extension has no hard dependency on it.
 */

import * as vscode from 'vscode';

const PYTHON_EXTENSION_ID = 'ms-python.python';

interface EnvironmentPath {
    id: string;
    path: string;
}

interface ResolvedEnvironment {
    executable: { uri?: vscode.Uri };
}

interface PythonEnvironmentsApi {
    getActiveEnvironmentPath(resource?: vscode.Uri): EnvironmentPath;
    resolveEnvironment(environment: EnvironmentPath | string): Promise<ResolvedEnvironment | undefined>;
    onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
}

interface PythonExtensionApi {
    environments?: PythonEnvironmentsApi;
}

async function environmentsApi(): Promise<PythonEnvironmentsApi | undefined> {
    const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
    if (!extension) {
        return undefined;
    }
    try {
        const api = extension.isActive ? extension.exports : await extension.activate();
        return api?.environments;
    } catch {
        return undefined;
    }
}

/** The active interpreter's executable for `resource`, or undefined without the Python extension. */
export async function pythonInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
    const api = await environmentsApi();
    if (!api) {
        return undefined;
    }
    try {
        const environment = await api.resolveEnvironment(api.getActiveEnvironmentPath(resource));
        return environment?.executable.uri?.fsPath;
    } catch {
        return undefined;
    }
}

/** Call `listener` when the user selects another interpreter (no-op without the extension). */
export async function onInterpreterChanged(listener: () => void): Promise<vscode.Disposable> {
    const api = await environmentsApi();
    return api ? api.onDidChangeActiveEnvironmentPath(() => listener()) : new vscode.Disposable(() => undefined);
}
