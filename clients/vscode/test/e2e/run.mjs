// End-to-end test of the extension in real VS Code: code-server on 127.0.0.1 with the packaged
// .vsix installed, driven in headless Chromium by playwright-core, against the real
// `python -m lsp_server` serving a tiny Llama. Prints "N passed, N failed" and exits non-zero on
// a failure. Screenshots, the server log and the code-server log land in $RESULTS_DIR.
//
// Environment (scripts/test.sh sets all of them):
//   CODE_SERVER   code-server launcher (needs Node 24 first on PATH)
//   NODE24_BIN    directory of the Node 24 binary
//   VSIX          the packaged extension
//   SERVER_PYTHON Python that can `-m lsp_server` (the repo's .venv)
//   MODEL_DIR     model served (a tiny Llama built by tiny_model.py)
//   SAMPLE_DIR    sample workspace copied into a temp dir
//   RESULTS_DIR   where artifacts go
//   CHROMIUM      Chromium executable (default /usr/bin/chromium)
//   FINETUNE_STEPS  optimizer steps of the palette fine-tune (default 4)
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { chromium } from 'playwright-core';

const env = (name, fallback) => {
    const value = process.env[name] ?? fallback;
    if (value === undefined) {
        throw new Error(`${name} is not set (run clients/vscode/scripts/test.sh)`);
    }
    return value;
};
const CODE_SERVER = env('CODE_SERVER');
const NODE24_BIN = env('NODE24_BIN');
const VSIX = env('VSIX');
const SERVER_PYTHON = env('SERVER_PYTHON');
const MODEL_DIR = env('MODEL_DIR');
const SAMPLE_DIR = env('SAMPLE_DIR');
const RESULTS_DIR = env('RESULTS_DIR');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const FINETUNE_STEPS = Number(env('FINETUNE_STEPS', '4'));
const MODEL_NAME = basename(MODEL_DIR.replace(/\/+$/, '')).replace(/^bundled:/, '');
// DEMO=1: a real model (e.g. MODEL_DIR=bundled:smollm2-135m) for the README screenshot; only the
// completion steps run and any non-empty ghost text passes.
const DEMO = process.env.DEMO === '1';
const DEMO_DONE = new Error('demo finished');

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (...args) => console.log(`[e2e ${elapsed()}]`, ...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Fixtures: workspace, user settings, code-server.

const root = mkdtempSync(join(tmpdir(), 'codellama-vscode-e2e-'));
const workspace = join(root, 'workspace');
const userData = join(root, 'user-data');
const extensions = join(root, 'extensions');
const serverLog = join(RESULTS_DIR, 'server.log');
mkdirSync(RESULTS_DIR, { recursive: true });
rmSync(serverLog, { force: true });
cpSync(SAMPLE_DIR, workspace, { recursive: true, filter: (src) => !src.includes(`${'/'}.codellama`) });
mkdirSync(join(workspace, '.vscode'), { recursive: true });
writeFileSync(
    join(workspace, '.vscode', 'settings.json'),
    JSON.stringify(
        {
            // serverCommand, serverEnv and logFile are machine-scoped (a workspace cannot run
            // code through them): they are in the user settings below.
            'codellama.model': MODEL_DIR,
            'codellama.device': 'cpu',
            'codellama.maxNewTokens': DEMO ? 24 : 12,
            'codellama.contextTokens': DEMO ? 384 : 1536,
            'codellama.debounceMs': 30,
            'codellama.logLevel': 'debug',
            'codellama.finetune.maxSteps': FINETUNE_STEPS,
            // The tiny model never stops on its own: keep the post-training evaluation short.
            'codellama.finetune.extraOptions': { maxHoles: 4, evalMaxNewTokens: 4, contextLen: 128 },
        },
        null,
        2,
    ),
);
// Machine-scoped settings: in code-server's window they may count as "remote" settings
// (<user-data-dir>/Machine) rather than user settings, so they go in both.
const machineSettings = {
    'codellama.serverCommand': [SERVER_PYTHON, '-m', 'lsp_server', '--log-level', 'info'],
    'codellama.serverEnv': { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
    'codellama.logFile': serverLog,
};
mkdirSync(join(userData, 'Machine'), { recursive: true });
writeFileSync(join(userData, 'Machine', 'settings.json'), JSON.stringify(machineSettings));
mkdirSync(join(userData, 'User'), { recursive: true });
writeFileSync(
    join(userData, 'User', 'settings.json'),
    JSON.stringify({
        ...machineSettings,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'security.workspace.trust.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'extensions.ignoreRecommendations': true,
        'update.mode': 'none',
        'editor.inlineSuggest.enabled': true,
        // Keep the suggest widget out of the way so the ghost text is what we see.
        'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
        'editor.suggestOnTriggerCharacters': false,
        'editor.wordBasedSuggestions': 'off',
        'editor.minimap.enabled': false,
        'window.commandCenter': false,
        'chat.disableAIFeatures': true,
        'workbench.colorTheme': 'Default Dark Modern',
        'workbench.secondarySideBar.defaultVisibility': 'hidden',
    }),
);

const freePort = () =>
    new Promise((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });

const codeServerEnv = { ...process.env, PATH: `${NODE24_BIN}:${process.env.PATH}` };
const codeServerArgs = [
    '--user-data-dir', userData,
    '--extensions-dir', extensions,
    '--config', join(root, 'config.yaml'),
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
];
writeFileSync(join(root, 'config.yaml'), 'auth: none\ncert: false\n');

function runToEnd(command, args, options) {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk) => (output += chunk));
        child.stderr.on('data', (chunk) => (output += chunk));
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} exited ${code}: ${output}`))));
    });
}

// ---------------------------------------------------------------------------------------------
// A tiny test harness: named checks, each passes or fails, the run goes on where it can.

const results = [];
async function check(name, fn) {
    const t0 = Date.now();
    try {
        await fn();
        results.push({ name, ok: true });
        log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
        return true;
    } catch (error) {
        results.push({ name, ok: false, error });
        log(`FAIL ${name}: ${error?.stack ?? error}`);
        await shot(`FAIL-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`).catch(() => undefined);
        // Close whatever the failed step left open (quick input, menu) so the next step starts clean.
        await page?.keyboard.press('Escape').catch(() => undefined);
        await page?.keyboard.press('Escape').catch(() => undefined);
        return false;
    }
}

let page;
async function shot(name) {
    if (page) {
        const path = join(RESULTS_DIR, `${name}.png`);
        await page.screenshot({ path });
        log(`screenshot ${path}`);
    }
}

async function waitFor(description, probe, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        last = await probe();
        if (last) {
            return last;
        }
        await sleep(250);
    }
    throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${description}`);
}

const statusItem = () => page.locator('.statusbar-item', { hasText: 'CodeLlama' }).first();
const statusText = async () => ((await statusItem().textContent({ timeout: 1000 }).catch(() => '')) ?? '').trim();
const toastsText = async () => (await page.locator('.notifications-toasts').innerText({ timeout: 1000 }).catch(() => '')) ?? '';
// The status bar once the model is served: "CodeLlama: <model>" with no spinner or progress.
const modelReady = (text) => text === `CodeLlama: ${MODEL_NAME}` || text.startsWith(`CodeLlama: ${MODEL_NAME} + `);

async function runPaletteCommand(label) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 10000 });
    await input.fill(`>${label}`);
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first();
    await row.waitFor({ state: 'visible', timeout: 10000 });
    await page.keyboard.press('Enter');
}

async function editorText() {
    return (await page.locator('.editor-instance .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
}

// ---------------------------------------------------------------------------------------------

let codeServer;
let browser;
try {
    log(`workspace ${workspace}; model ${MODEL_DIR}`);
    await runToEnd(CODE_SERVER, [...codeServerArgs, '--install-extension', VSIX], { env: codeServerEnv });
    log('extension installed');
    const port = await freePort();
    const codeServerLog = join(RESULTS_DIR, 'code-server.log');
    writeFileSync(codeServerLog, '');
    codeServer = spawn(CODE_SERVER, [...codeServerArgs, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, workspace], {
        env: codeServerEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
    });
    let csOutput = '';
    const onData = (chunk) => {
        csOutput += chunk;
        writeFileSync(codeServerLog, csOutput);
    };
    codeServer.stdout.on('data', onData);
    codeServer.stderr.on('data', onData);
    await waitFor('code-server to listen', () => csOutput.includes('HTTP server listening'), 60000);
    log(`code-server on 127.0.0.1:${port}`);

    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage', '--no-first-run'],
    });
    const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
    page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);

    await check('workbench loads and the extension shows its status bar item', async () => {
        await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
        await statusItem().waitFor({ state: 'visible', timeout: 60000 });
        log(`status bar: ${await statusText()}`);
    });

    await check('status bar names the served model once it is loaded', async () => {
        const states = new Set();
        await waitFor(`status bar to show ${MODEL_NAME} ready`, async () => {
            const text = await statusText();
            states.add(text);
            return modelReady(text);
        }, 180000);
        log(`status bar went through: ${JSON.stringify([...states])}`);
        log(`status bar: ${await statusText()}`);
    });

    const file = 'inventory/money.py';
    let ghost = '';
    await check('typing in a Python file shows ghost text from the server', async () => {
        await page.keyboard.press('Control+P');
        const input = page.locator('.quick-input-widget input');
        await input.waitFor({ state: 'visible', timeout: 10000 });
        await input.fill(file);
        await page.locator('.quick-input-list .monaco-list-row', { hasText: 'money.py' }).first().waitFor({ timeout: 15000 });
        await page.keyboard.press('Enter');
        await page.locator('.editor-instance .view-lines').first().waitFor({ timeout: 15000 });
        await page.locator('.editor-instance .view-lines').first().click();
        await page.keyboard.press('Control+End');
        await page.keyboard.press('Enter');
        await page.keyboard.press('Enter');
        if (DEMO) {
            await page.keyboard.type('def total(prices: list[Money]) -> Money:\n', { delay: 40 });
            await page.keyboard.type('result = Money(0)\n', { delay: 40 });
            await page.keyboard.type('for price in prices:\n', { delay: 40 });
            await page.keyboard.type('result = ', { delay: 40 });
        } else {
            await page.keyboard.type('def total(items):\n', { delay: 40 });
            await page.keyboard.type('return ', { delay: 40 });
        }
        const ghostLocator = page.locator('.editor-instance [class*="ghost-text"]');
        await waitFor('ghost text', async () => (await ghostLocator.count()) > 0 && (await ghostLocator.allInnerTexts()).join('').trim(), DEMO ? 180000 : 60000);
        ghost = (await ghostLocator.allInnerTexts()).join('').replace(/\u00a0/g, ' ').trim();
        log(`ghost text: ${JSON.stringify(ghost)}`);
        if (DEMO) {
            await shot('demo-completion');
            return;
        }
        if (!/self|value/.test(ghost)) {
            throw new Error(`unexpected ghost text ${JSON.stringify(ghost)} (the tiny model emits only "self"/"value")`);
        }
        await shot('01-ghost-text');
    });

    if (DEMO) {
        throw DEMO_DONE;
    }

    await check('Tab accepts the suggestion into the document', async () => {
        if (!ghost) {
            throw new Error('no ghost text to accept');
        }
        await page.keyboard.press('Tab');
        await waitFor('the accepted text in the editor', async () => (await editorText()).includes(`return ${ghost.split(/\s/)[0]}`), 10000);
        const ghostLeft = await page.locator('.editor-instance [class*="ghost-text"]').count();
        log(`after Tab: ghost elements left ${ghostLeft}`);
        await shot('02-accepted');
    });

    await check('Ctrl+Right accepts the next word of the suggestion', async () => {
        await page.keyboard.press('Enter');
        await page.keyboard.type('y = ', { delay: 40 });
        const ghostLocator = page.locator('.editor-instance [class*="ghost-text"]');
        await waitFor('ghost text', async () => (await ghostLocator.count()) > 0 && (await ghostLocator.allInnerTexts()).join('').trim(), 60000);
        await page.keyboard.press('Control+ArrowRight');
        await waitFor('the first word in the editor', async () => /y = (self|value)/.test(await editorText()), 10000);
        await page.keyboard.press('Escape');
        await page.keyboard.press('End');
    });

    await check('Escape dismisses a suggestion', async () => {
        await page.keyboard.press('Enter');
        await page.keyboard.type('x = ', { delay: 40 });
        const ghostLocator = page.locator('.editor-instance [class*="ghost-text"]');
        await waitFor('ghost text', async () => (await ghostLocator.count()) > 0 && (await ghostLocator.allInnerTexts()).join('').trim(), 60000);
        await page.keyboard.press('Escape');
        await waitFor('ghost text to disappear', async () => (await ghostLocator.count()) === 0, 5000);
        const line = (await editorText()).split('\n').filter((l) => l.includes('x =')).pop() ?? '';
        if (/self|value/.test(line)) {
            throw new Error(`dismissed text was inserted: ${line}`);
        }
    });

    await check('lightbulb "Refactor with instruction…" asks for the instruction and runs the refactor', async () => {
        await page.keyboard.press('Control+G');
        await page.locator('.quick-input-widget input').waitFor({ state: 'visible', timeout: 10000 });
        await page.keyboard.type('48');
        await page.keyboard.press('Enter');
        await page.keyboard.press('Home');
        await page.keyboard.press('Shift+ArrowDown');
        await page.keyboard.press('Shift+ArrowDown');
        await page.keyboard.press('Shift+End');
        await page.keyboard.press('Control+.');
        const item = page.locator('.action-widget .monaco-list-row', { hasText: 'Refactor with instruction' }).first();
        await item.waitFor({ state: 'visible', timeout: 30000 });
        await shot('06-refactor-menu');
        await item.click();
        const input = page.locator('.quick-input-widget', { hasText: 'Refactor with instruction' });
        await input.waitFor({ state: 'visible', timeout: 10000 });
        await page.keyboard.type('rename items to values', { delay: 20 });
        await shot('07-refactor-instruction');
        await page.keyboard.press('Enter');
        // The tiny random model cannot write a valid rewrite: the server either applies an edit or
        // says why not (notification + log). Either proves the instruction reached it.
        const outcome = await waitFor('the refactor outcome', async () => {
            const toasts = await toastsText();
            if (/no valid edit|rejected|could not|failed|applied/i.test(toasts)) {
                return `notification: ${toasts}`;
            }
            const final = readFileSync(serverLog, 'utf8').match(/Refactor with instruction: (?!started|Generating).*/i);
            return final ? `server log: ${final[0]}` : undefined;
        }, 180000);
        log(`refactor outcome: ${outcome}`);
        await shot('08-refactor-done');
        await page.keyboard.press('Escape');
    });

    await check('clicking the status bar item writes the server status to the output channel', async () => {
        await statusItem().click();
        await waitFor('status JSON in the output panel', async () => {
            const text = ((await page.locator('.part.panel').first().innerText({ timeout: 1000 }).catch(() => '')) ?? '').replace(/\u00a0/g, ' ');
            return text.includes('codellama.status →') && text.includes('"features"');
        }, 20000);
        await shot('03-status');
        await page.keyboard.press('Control+J'); // hide the panel again
    });

    await check('"CodeLlama: Fine-tune on this workspace" runs from the palette with progress', async () => {
        await runPaletteCommand('Notifications: Clear All Notifications');
        await runPaletteCommand('CodeLlama: Fine-tune on this workspace');
        const seen = [];
        let sawTraining = false;
        let finalStatus = '';
        await waitFor('training progress, then the new adapter in the status bar', async () => {
            const text = await statusText();
            if (seen[seen.length - 1] !== text) {
                seen.push(text);
            }
            if (/Fine-tuning \d+%/.test(text) && !sawTraining) {
                sawTraining = true;
                await shot('04-finetune-progress');
            }
            if (sawTraining && modelReady(text) && text.includes(' + ')) {
                finalStatus = text;
                return true;
            }
            const toasts = await toastsText();
            if (/fine-tune failed|error/i.test(toasts)) {
                throw new Error(`fine-tune failed: ${toasts}`);
            }
            return false;
        }, 600000);
        log(`status bar during fine-tune: ${JSON.stringify(seen)}`);
        log(`notifications: ${JSON.stringify(await toastsText())}`);
        await shot('05-finetune-done');
        if (!/ft-\d/.test(finalStatus)) {
            throw new Error(`status bar does not name the new adapter run: ${finalStatus}`);
        }
    });

    await check('"CodeLlama: Use adapter…" → None serves the base model again', async () => {
        await runPaletteCommand('CodeLlama: Use adapter');
        const none = page.locator('.quick-input-list .monaco-list-row', { hasText: 'serve the base model only' }).first();
        await none.waitFor({ state: 'visible', timeout: 15000 });
        await shot('09-use-adapter');
        await none.click();
        await waitFor('the status bar without an adapter', async () => {
            const text = await statusText();
            return modelReady(text) && !text.includes(' + ');
        }, 120000);
        log(`status bar: ${await statusText()}`);
    });

    if (pageErrors.length) {
        log(`page errors (not failures): ${pageErrors.slice(0, 5).join(' | ')}`);
    }
} catch (error) {
    if (error === DEMO_DONE) {
        log('DEMO run: stopped after the completion screenshot');
    } else {
        results.push({ name: 'harness', ok: false, error });
        log(`harness error: ${error?.stack ?? error}`);
        await shot('FAIL-harness').catch(() => undefined);
    }
} finally {
    await browser?.close().catch(() => undefined);
    if (codeServer?.pid) {
        try {
            process.kill(-codeServer.pid, 'SIGTERM');
        } catch {
            // already gone
        }
    }
    if (existsSync(serverLog)) {
        log(`server log: ${serverLog} (${readFileSync(serverLog, 'utf8').split('\n').length} lines)`);
    }
    if (!process.env.KEEP_E2E_TMP) {
        rmSync(root, { recursive: true, force: true });
    }
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
for (const r of results) {
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.ok ? '' : ` — ${r.error?.message ?? r.error}`}`);
}
console.log(`vscode-e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
