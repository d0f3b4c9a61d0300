// Bundles the extension with esbuild (dist/extension.js); with --tests, bundles the unit tests
// (test/*.test.ts → out/test/*.test.js) for `node --test`.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const production = args.has('--production');

const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'info', absWorkingDir: root };

if (args.has('--tests')) {
    const tests = readdirSync(join(root, 'test')).filter((name) => name.endsWith('.test.ts'));
    await esbuild.build({
        ...common,
        entryPoints: tests.map((name) => join('test', name)),
        outdir: 'out/test',
        sourcemap: 'inline',
        // Unit tests cover only modules free of the `vscode` API; fail loudly if one slips in.
        external: [],
    });
} else {
    const options = {
        ...common,
        entryPoints: ['src/extension.ts'],
        outfile: 'dist/extension.js',
        external: ['vscode'],
        minify: production,
        sourcemap: !production,
    };
    if (args.has('--watch')) {
        const context = await esbuild.context(options);
        await context.watch();
    } else {
        await esbuild.build(options);
    }
}
