export { TenantDatapath, linkCommands, NETNS_DIR } from './tenant.js';
export { NftTables } from './nft.js';
export { attachEndpoint, attachOuterVeth, detachEndpoint, unwireEndpoint, forgetConnections, checkEndpoint, withNetnsName } from './endpoint.js';
export { LinuxDatapath } from './datapath.js';
export { ensureHost } from './host.js';
export { observeLinks, detectUnderlayIp, detectUnderlayIp6, type ObservedLink } from './observe.js';
export { Generations, NFTGEN } from './generation.js';
