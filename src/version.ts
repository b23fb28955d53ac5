/**
 * This package's version, as package.json says (a test keeps the two equal). A module of its own
 * rather than an import of package.json, so that the browser entry needs no JSON import.
 */
export const version = '0.1.0'
