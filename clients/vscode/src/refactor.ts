/**
 * The "Refactor with instruction…" code action: recognising the `codellama.refactor` arguments
 * (or code action data) that still lack the user's instruction, and filling it in. Pure.
 */

import { INSTRUCTION_REFACTOR_KIND } from './constants';

export interface RefactorArguments {
    uri?: string;
    range?: unknown;
    kind?: string;
    instruction?: string | null;
    [key: string]: unknown;
}

function asArguments(value: unknown): RefactorArguments | undefined {
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as RefactorArguments) : undefined;
}

/** True when `value` is an instruction refactor whose instruction is missing or blank. */
export function needsInstruction(value: unknown): boolean {
    const args = asArguments(value);
    if (!args || args.kind !== INSTRUCTION_REFACTOR_KIND) {
        return false;
    }
    return typeof args.instruction !== 'string' || args.instruction.trim().length === 0;
}

/** A copy of `value` with the instruction set (trimmed). */
export function withInstruction(value: unknown, instruction: string): RefactorArguments {
    return { ...(asArguments(value) ?? {}), instruction: instruction.trim() };
}

/** Validation message for the input box: undefined when acceptable. */
export function validateInstruction(text: string): string | undefined {
    return text.trim().length === 0 ? 'Describe the change, e.g. "use pathlib instead of os.path".' : undefined;
}
