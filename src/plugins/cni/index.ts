export { handleCni, toCniError, type CniHost, type AddRequest, type Scope, type CniOutcome } from './handler.js';
export { CniError, parseRequest, parseArgs, formatAddResult, SUPPORTED_VERSIONS, PluginConfig, type AddResultInput } from './protocol.js';
export { serveCniSocket, type CniSocketServer } from './socket.js';
