/** The Slack-compatible JSON an incoming webhook takes (Mattermost and Teams' Slack mode read it too). */
export interface SlackBody {
  text: string;
  blocks: Array<Record<string, unknown>>;
}

/** Slack reads &, < and > as control characters (links, @channel mentions): an operator's text is escaped. */
export function escapeMrkdwn(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** A section block holds at most 3,000 characters. */
const SECTION_MAX = 3000;

/** The message as `text` (what notifications show) and as blocks, with the run and actor that sent it. */
export function slackBody(message: string, origin: { runId: number; actor: string }): SlackBody {
  const text = escapeMrkdwn(message);
  const section = text.length > SECTION_MAX ? text.slice(0, SECTION_MAX - 1) + '…' : text;
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: section } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escapeMrkdwn(`sent by jwtir run ${origin.runId} (${origin.actor})`) }] },
    ],
  };
}
