/** The package's main entry: the CLI's boundary, for embedding `jwtir` in other tools. */
export { main } from './main.js';
export { buildProgram } from './program.js';
