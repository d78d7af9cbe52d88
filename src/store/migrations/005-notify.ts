/** Notifications (issue 4): the user outbox, and a record of every send to on-call and SET receivers. */
export const sql = `
SELECT 1;
`;
