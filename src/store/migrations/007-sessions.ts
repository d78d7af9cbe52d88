/** Sessions (issue 4): reserved for the sessions and logout commands. */
export const sql = `
SELECT 1;
`;
