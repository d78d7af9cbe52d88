import { z } from 'zod';

/** The shape of a runbook file (YAML or JSON). Semantic checks live in load.ts. */
const paramSchema = z
  .object({
    type: z.enum(['string', 'boolean', 'duration', 'integer', 'list', 'enum']),
    description: z.string().min(1),
    values: z.array(z.string()).min(1).optional(),
    default: z.unknown().optional(),
    required: z.boolean().optional(),
  })
  .strict();

const actionCall = z.object({ action: z.string().min(1), with: z.record(z.string(), z.unknown()).default({}) }).strict();

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
