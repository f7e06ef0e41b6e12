export { Agent, type AgentOptions } from './agent.js';
export { DesiredState } from './state.js';
export { desiredConflists, syncConflists } from './conflists.js';
