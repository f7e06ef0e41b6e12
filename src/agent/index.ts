export { Agent, type AgentOptions } from './agent.js';
export { DesiredState } from './state.js';
export { desiredConflists, syncConflists } from './conflists.js';
export { uninstall, type UninstallOptions } from './uninstall.js';
export { joinWithToken, loadCredentials, notJoined, type HostCredentials } from './identity.js';
export { wireguardKey, wireguardKeyPath, keyDue, rotateWireguardKey } from './wgkey.js';
