/** Types of nginx.mjs (plain JavaScript, shared with bench/forward-auth.mjs). */
export declare const NGINX_EXAMPLE: string;
export declare function findNginx(): { bin: string; missing?: undefined } | { bin?: undefined; missing: string };
export declare function exampleSite(o: { guard: string; upstream: string; listen: string }): string;
export interface RunningNginx {
  pid: number | undefined;
  errorLog(): string;
  stop(): Promise<void>;
}
export declare function startNginx(o: { bin: string; dir: string; site: string; ports: number[]; workers?: number | 'auto' }): Promise<RunningNginx>;
