/** Real-router lab harness: network namespaces, FRR and BIRD instances, polling. See README.md. */
export * from './netns.js';
export * from './frr.js';
export * from './bird.js';
export * from './wait.js';
export { registerExitCleanup, runExitCleanupsSync } from './cleanup.js';
export { isAlive } from './proc.js';
