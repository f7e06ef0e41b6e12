export { TenantDatapath, linkCommands, NETNS_DIR } from './tenant.js';
export { NftTables } from './nft.js';
export { attachEndpoint, attachmentOf, attachOuterVeth, detachEndpoint, unwireEndpoint, forgetConnections, checkEndpoint, withNetnsName, type Attachment } from './endpoint.js';
export { ensureHost } from './host.js';
export { observeLinks, detectUnderlayIp, type ObservedLink } from './observe.js';
