import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { RunbookInvalidError } from '../errors.js';
import { ACTIONS } from './actions/index.js';
import { runbookSchema, type RunbookDoc } from './schema.js';
import { LOOP_NAMES } from './expand.js';
import { references } from './template.js';

export interface Runbook {
  doc: RunbookDoc;
  path: string;
  /** sha256 of the file's bytes: a resume refuses to continue under a changed runbook. */
  hash: string;
}

/** The runbooks shipped with jwtir (`runbooks/` at the package root). */
export const BUILTIN_RUNBOOK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../runbooks');

/** Resolves a runbook name to its file: JWTIR_RUNBOOK_DIR first, then the shipped ones. */
export function runbookPath(name: string, env: NodeJS.ProcessEnv = process.env): string {
  for (const dir of [env.JWTIR_RUNBOOK_DIR, BUILTIN_RUNBOOK_DIR]) {
    if (!dir) continue;
    for (const ext of ['.yaml', '.yml', '.json']) {
      const file = path.join(dir, name + ext);
      if (existsSync(file)) return file;
    }
  }
  throw new RunbookInvalidError(`no runbook named "${name}"`, { hint: `looked in ${env.JWTIR_RUNBOOK_DIR ?? ''} ${BUILTIN_RUNBOOK_DIR}`.trim() });
}

export function loadRunbook(file: string): Runbook {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new RunbookInvalidError(`cannot read runbook ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new RunbookInvalidError(`runbook ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  const parsed = runbookSchema.safeParse(raw);
  const problems: string[] = parsed.success
    ? checkSemantics(parsed.data)
    : parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
  if (!parsed.success || problems.length) {
    throw new RunbookInvalidError(`runbook ${file} has ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      details: { problems },
      hint: 'fix every problem listed; nothing was run',
    });
  }
  return { doc: parsed.data, path: file, hash: createHash('sha256').update(text).digest('hex') };
}

/** Marks a `foreach` step among the steps seen: it has one set of outputs per item, not one. */
const FOREACH = '\u0000foreach';

/** Checks a schema-valid runbook for mistakes a schema cannot see. Collects all of them. */
function checkSemantics(doc: RunbookDoc): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>(); // step id -> action
  for (const [i, step] of doc.steps.entries()) {
    const where = `steps.${i} (${step.id})`;
    if (seen.has(step.id)) problems.push(`${where}: step id "${step.id}" is used twice`);
    const action = ACTIONS.get(step.action);
    if (!action) problems.push(`${where}: unknown action "${step.action}" (known: ${[...ACTIONS.keys()].join(', ')})`);
    if (action?.mutates && !step.undo) problems.push(`${where}: action ${step.action} changes state, so the step must declare an undo`);
    if (step.undo && 'action' in step.undo && !ACTIONS.has(step.undo.action)) {
      problems.push(`${where}.undo: unknown action "${step.undo.action}"`);
    }
    const check = (value: unknown, field: string, extra: Record<string, readonly string[]> = {}) => {
      for (const ref of references(value)) {
        const [root, name, sub, out] = ref.split('.');
        if (step.foreach && (LOOP_NAMES as readonly string[]).includes(root!) && name === undefined) continue;
        if (root === 'params') {
          if (!name || !Object.hasOwn(doc.params, name)) problems.push(`${where}.${field}: \${{ ${ref} }} names no declared parameter`);
        } else if (root === 'steps') {
          const target = name ? seen.get(name) : undefined;
          if (!target) problems.push(`${where}.${field}: \${{ ${ref} }} refers to no earlier step`);
          else if (target === FOREACH) problems.push(`${where}.${field}: \${{ ${ref} }}: step ${name} runs once per item, so it has no single outputs`);
          else if (sub !== 'outputs' || !out || !ACTIONS.get(target)?.outputs.includes(out)) {
            problems.push(`${where}.${field}: \${{ ${ref} }} is not an output of step ${name} (${target})`);
          }
        } else if (root && Object.hasOwn(extra, root)) {
          if (!name || !extra[root]!.includes(name)) problems.push(`${where}.${field}: \${{ ${ref} }} is not available here`);
        } else {
          problems.push(`${where}.${field}: \${{ ${ref} }} must start with params. or steps.`);
        }
      }
    };
    check(step.with, 'with');
    if (step.when) check(step.when, 'when');
    if (step.confirm) check(step.confirm, 'confirm');
    check(step.summary, 'summary');
    if (step.undo && 'action' in step.undo) {
      check(step.undo.with, 'undo.with', { inputs: Object.keys(step.with), outputs: action?.outputs ?? [] });
    }
    if (step.gate) {
      if (step.gate.wait === undefined) problems.push(`${where}.gate: a gate needs wait (how long to watch before judging)`);
      check(step.gate, 'gate');
    }
    if (step.foreach) {
      const list = /params\.([A-Za-z][A-Za-z0-9]*)/.exec(step.foreach)![1]!;
      if (doc.params[list]?.type !== 'list') problems.push(`${where}.foreach: parameter "${list}" must be declared with type list`);
    }
    seen.set(step.id, step.foreach ? FOREACH : step.action);
  }
  for (const [name, param] of Object.entries(doc.params)) {
    if (param.type === 'enum' && !param.values) problems.push(`params.${name}: an enum parameter needs values`);
  }
  return problems;
}
