import { z } from 'zod';

/** The shape of a runbook file (YAML or JSON). Semantic checks live in load.ts. */
const paramSchema = z
  .object({
    type: z.enum(['string', 'boolean', 'duration', 'integer', 'number', 'list', 'enum']),
    description: z.string().min(1),
    values: z.array(z.string()).min(1).optional(),
    default: z.unknown().optional(),
    required: z.boolean().optional(),
  })
  .strict();

const actionCall = z.object({ action: z.string().min(1), with: z.record(z.string(), z.unknown()).default({}) }).strict();

/**
 * A health gate: after the step's effect, wait, then read the guards' counters (and run the
 * service's own check); a breach undoes the step and stops the run. Values may be templates.
 */
const gateSchema = z
  .object({
    /** How long to watch before judging (duration). */
    wait: z.unknown(),
    /** The key being switched off; its key_cutover denials are expected, not failures. */
    kid: z.unknown().optional(),
    /** Judge the cohorts below this percentage (the ones the step cut over). */
    cohortsBelow: z.unknown().optional(),
    /** Highest share of denials (other than key_cutover) tolerated in those cohorts, 0..1. */
    maxDenialRate: z.unknown().optional(),
    /** Lowest share of those users' requests already on another key, 0..1. */
    minReloginRate: z.unknown().optional(),
    /** Fewer decisions than this in the window: too little traffic to judge the denial rate. */
    minRequests: z.unknown().optional(),
    /** Fewer users turned back than this: too few to judge the re-login rate. */
    minUsers: z.unknown().optional(),
    /** The service's own business check, run with sh -c; exit 0 means healthy. */
    checkCmd: z.unknown().optional(),
    checkTimeout: z.unknown().optional(),
  })
  .strict();

const stepSchema = z
  .object({
    id: z.string().regex(/^[a-z][a-z0-9-]*$/, 'step ids are lower-case words joined by hyphens'),
    action: z.string().min(1),
    summary: z.string().min(1),
    with: z.record(z.string(), z.unknown()).default({}),
    /** Exactly one expression: "${{ params.x }}" (a string around it would always be truthy). */
    when: z.string().regex(/^\$\{\{\s*[A-Za-z_][\w.-]*\s*\}\}$/, 'when must be exactly one expression, like "${{ params.compromised }}"').optional(),
    confirm: z.string().optional(),
    /** How to undo the step; `none` (with a reason) for steps that change nothing. */
    undo: z.union([actionCall, z.object({ none: z.string().min(1) }).strict()]).optional(),
    /**
     * One step per item of a list parameter ("${{ params.schedule }}"), with ids <id>-1, <id>-2, …;
     * its templates may use ${{ item }}, ${{ index }} (from 1) and ${{ previous }} (the item before, or null).
     */
    foreach: z.string().regex(/^\$\{\{\s*params\.[A-Za-z][A-Za-z0-9]*\s*\}\}$/, 'foreach must be exactly one list parameter, like "${{ params.schedule }}"').optional(),
    gate: gateSchema.optional(),
  })
  .strict();

export const runbookSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/),
    summary: z.string().min(1),
    /** Runs holding the same lock name exclude each other. */
    lock: z.string().regex(/^[a-z][a-z0-9-]*$/),
    params: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9]*$/), paramSchema).default({}),
    steps: z.array(stepSchema).min(1),
  })
  .strict();

export type RunbookDoc = z.infer<typeof runbookSchema>;
export type StepDoc = z.infer<typeof stepSchema>;
export type ParamDoc = z.infer<typeof paramSchema>;
export type GateDoc = z.infer<typeof gateSchema>;
