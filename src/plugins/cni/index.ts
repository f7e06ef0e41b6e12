export { handleCni, toCniError, type CniHost, type AddRequest, type Scope, type CniOutcome } from './handler.js';
export { CniError, addressMismatch, parseRequest, formatAddResult, SUPPORTED_VERSIONS, PluginConfig, type AddResultInput, type Attachment } from './protocol.js';
export { parseArgs } from './add.js';
export { serveCniSocket, type CniSocketServer } from './socket.js';
