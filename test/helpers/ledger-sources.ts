import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { PG_URL, REDIS_URL } from './services.js';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

/**
 * The places a legacy service keeps its sessions, made for real: a sessions table in its own
 * Postgres schema, and an express-session store in Redis written by express-session itself
 * through connect-redis. Tokens are minted by jsonwebtoken with the service's secret.
 */
export interface AppSession {
  id: string;
  userId: string;
  createdAt: Date;
  roles: string[];
}

/** `<schema>.app_sessions`, shaped like a typical service's table (uuid id, user_id, created_at, …). */
export async function createSessionsTable(schema: string): Promise<void> {
  await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.app_sessions (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id text NOT NULL,
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      roles text[] NOT NULL DEFAULT '{}',
      user_agent text,
      last_ip inet
    )`);
}

/** Inserts sessions for these users, created `ageSec[i]` seconds ago, living an hour; returns them. */
export async function insertSessions(schema: string, users: string[], ageSec: (i: number) => number, roles: (i: number) => string[] = () => ['customer']): Promise<AppSession[]> {
  const now = Date.now();
  const created = users.map((_, i) => new Date(now - ageSec(i) * 1000));
  const rows = await sql<{ id: string; user_id: string; created_at: Date; roles: string[] }>(
    `INSERT INTO ${schema}.app_sessions (user_id, created_at, expires_at, roles, user_agent)
     SELECT u, c, c + interval '1 hour', string_to_array(r, ','), 'Firefox on Linux'
     FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS t(u, c, r)
     RETURNING id, user_id, created_at, roles`,
    [users, created.map((d) => d.toISOString()), users.map((_, i) => roles(i).join(','))],
  );
  return rows.map((r) => ({ id: r.id, userId: r.user_id, createdAt: r.created_at, roles: r.roles }));
}

export async function sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** A token the service's own code would mint for a session: HS256, no kid, sub and sid. */
export function serviceToken(secret: string, sub: string, sid: string, roles: string[] = ['customer']): string {
  return jwt.sign({ sub, sid, roles }, secret, { algorithm: 'HS256', expiresIn: 3600 });
}

export interface SessionApp {
  prefix: string;
  /** Logs a user in through HTTP: express-session stores the session; the service mints its token. */
  login(user: string): Promise<{ sid: string; token: string }>;
  close(): Promise<void>;
}

/**
 * A tiny express service with express-session in Redis (connect-redis, under its own key prefix):
 * POST /login/:user regenerates the session, stores userId in it, and answers with the JWT the
 * service signs for that session.
 */
export async function startSessionApp(secret: string): Promise<SessionApp> {
  const prefix = `sess-${randomBytes(4).toString('hex')}:`;
  const client = new Redis(REDIS_URL);
  const app = express();
  app.use(session({ store: new RedisStore({ client, prefix }), secret: randomBytes(16).toString('hex'), resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } }));
  app.post('/login/:user', (req, res, next) => {
    req.session.regenerate((error) => {
      if (error) return next(error);
      req.session.userId = req.params.user;
      req.session.save((saveError) => {
        if (saveError) return next(saveError);
        res.json({ sid: req.sessionID, token: serviceToken(secret, req.params.user, req.sessionID) });
      });
    });
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    prefix,
    async login(user) {
      const res = await fetch(`${base}/login/${encodeURIComponent(user)}`, { method: 'POST' });
      if (!res.ok) throw new Error(`login ${user}: HTTP ${res.status}`);
      return (await res.json()) as { sid: string; token: string };
    },
    async close() {
      await new Promise((resolve) => server.close(resolve));
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length) await client.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
      await client.quit();
    },
  };
}
