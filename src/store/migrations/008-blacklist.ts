/**
 * Blacklist (issue 4): how each entry's expiry was chosen, so `blacklist list` can say why an
 * entry ends when it does (the token's exp, the ledger session, the maximum-lifetime bound, --ttl).
 */
export const sql = `
ALTER TABLE revocations ADD COLUMN expiry_rule text;
ALTER TABLE watermarks ADD COLUMN expiry_rule text;
`;
