/** How the CLI exits: success, a failed command, a wrong command line. */
export const exitCodes = { ok: 0, failed: 1, usage: 2 } as const
