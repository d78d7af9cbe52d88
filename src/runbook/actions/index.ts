import type { Action } from './action.js';
import { BLACKLIST_ACTIONS } from './blacklist.js';
import { NOTIFY_ACTIONS } from './notify.js';
import { jwksPublish } from './jwks.js';
import { LEDGER_ACTIONS } from './ledger.js';
import { LOGOUT_ACTIONS } from './logout.js';
import {
  keyActivate,
  keyDestroy,
  keyFlagCompromised,
  keyForget,
  keyGenerate,
  keyImport,
  keyPublish,
  keyReactivate,
  keyUnflagCompromised,
  keyUnpublish,
} from './keys.js';
import { HANDOFF_ACTIONS } from './handoff.js';
import { POLICY_ACTIONS } from './policy.js';
import { revocationsLiftOwn, revocationsRestore } from './revocations.js';
import { sessionsEndForRoles, watermarksClear } from './sessions.js';
import { wait } from './wait.js';

/** Every action a runbook may name. */
export const ACTIONS: ReadonlyMap<string, Action> = new Map(
  [
    keyImport,
    keyForget,
    keyGenerate,
    keyDestroy,
    keyPublish,
    keyUnpublish,
    keyActivate,
    keyReactivate,
    keyFlagCompromised,
    keyUnflagCompromised,
    sessionsEndForRoles,
    watermarksClear,
    revocationsLiftOwn,
    revocationsRestore,
    jwksPublish,
    wait,
    ...POLICY_ACTIONS,
    ...HANDOFF_ACTIONS,
    ...BLACKLIST_ACTIONS,
    ...NOTIFY_ACTIONS,
    ...LOGOUT_ACTIONS,
    ...LEDGER_ACTIONS,
  ].map((a) => [a.name, a as Action]),
);
