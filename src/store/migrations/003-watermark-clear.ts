/**
 * Watermarks are cleared, not deleted, by an undo: the undo can then always find which subjects
 * it touched and push their new effective watermark, even when it runs a second time.
 */
export const sql = `
ALTER TABLE watermarks ADD COLUMN cleared_at timestamptz;
`;
